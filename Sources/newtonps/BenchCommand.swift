import ArgumentParser
import Foundation
import NewtonCore
import NewtonDriver
import NewtonObservability
import NewtonRoles
import NewtonTraining
import NewtonTransport

/// `newtonps bench`: throughput of the kernels against the machine's own
/// sgemm on the same shapes, measured in one run; prints one JSON object.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm, Gauss-Newton products, a full gradient and a Newton iteration; prints one JSON object.")

    @Option(help: "Neurons per layer, input first.", transform: parseIntegerList)
    var layers: [Int] = [784, 300, 300, 10]
    @Option(help: "Rows of the Gauss-Newton subsample |S|.")
    var subsample = 3000
    @Option(help: "Rows for the full function + gradient.")
    var rows = 60000
    @Option(help: "Timed repetitions; the best is reported.")
    var repeats = 5
    @Option(help: "Fashion-MNIST (IDX) directory; synthetic data of the same shape when absent.")
    var data = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Workers of the embedded cluster for the gradient and Newton iteration.")
    var workers = 1
    @Option(help: "OpenBLAS threads (default: all cores).")
    var blasThreads: Int?
    @Flag(help: "Skip the full gradient and the Newton iteration.")
    var kernelsOnly = false
    @Flag(help: "Data-parallel scaling of the Hessian-vector product instead: 1, 2, 4, 8 workers and a projection to N machines.")
    var scaling = false
    @Option(help: "With --scaling: rows of the curvature batch.")
    var curvatureBatch = 8192
    @Flag(
        help:
            "The cost of trust instead: a Newton job on local processes in plaintext, with TLS, and with TLS and a checkpoint every iteration."
    )
    var trust = false
    @Option(help: "With --trust or --data-streaming: Newton iterations per run.")
    var iterations = 5
    @Flag(
        help:
            "Reading data by blocks instead: index --data (timed), train on it in memory, then on local processes whose workers read the files, then stream them from the driver; peak RSS per role, bytes streamed."
    )
    var dataStreaming = false
    @Option(help: "With --data-streaming: the format of --data.")
    var dataFormat: DataFormat = .idx
    @Option(help: "With --data-streaming: each worker's block cache in MiB.")
    var dataCacheMb = 64
    @Option(help: "With --data-streaming: hidden layer sizes.", transform: parseIntegerList)
    var hidden: [Int] = [64]
    @Option(help: "With --data-streaming: the Gauss-Newton products, jacobian or rop.")
    var products: ProductsMode = .jacobian

    func validate() throws {
        guard subsample > 0, rows > 0, repeats > 0, curvatureBatch > 0, workers > 0, iterations > 0, dataCacheMb > 0,
            blasThreads.map({ $0 > 0 }) ?? true
        else {
            throw ValidationError(
                "--subsample, --rows, --repeats, --curvature-batch, --workers, --iterations, --data-cache-mb and --blas-threads must be positive"
            )
        }
    }

    func run() async throws {
        if trust {
            print(try await TrustBench(data: data, iterations: iterations).json())
            return
        }
        if dataStreaming {
            print(
                try await DataBench(
                    data: data, format: dataFormat, cacheMegabytes: dataCacheMb, hidden: hidden, products: products,
                    iterations: iterations
                ).json())
            return
        }
        BLAS.threads = blasThreads ?? ProcessInfoCores.count
        let spec = try NetworkSpec(layerSizes: layers, activations: [.relu], loss: .crossEntropy)
        let (trainingData, descriptor, source) = try loadData(spec: spec)
        if scaling {
            BLAS.threads = 1
            print(
                try await ScalingBench(
                    spec: spec, data: trainingData, descriptor: descriptor, rows: curvatureBatch,
                    repeats: repeats, wire: try await measureWire()
                ).json(source: source))
            return
        }
        let parameters = DenseParameters(heNormal: spec, seed: 1)
        let kernels = RowKernels(parameters: parameters)
        let sample = trainingData.train.subset(0..<min(subsample, trainingData.train.rows))
        var direction = DenseParameters(zeros: spec)
        var rng = SeededGenerator(seed: 2)
        for i in direction.values.indices { direction.values[i] = Float(rng.nextGaussian()) }

        var result: [String: Double] = ["blas_threads": Double(BLAS.threads), "subsample_rows": Double(sample.rows)]
        result.merge(Self.layoutImbalance(spec, subsample: sample.rows, shardRows: 1000)) { $1 }
        let threads = BLAS.threads
        for (key, value) in try measureProducts(spec: spec, kernels: kernels, sample: sample, direction: direction) {
            result[key] = value
        }
        // Each worker of a cluster that shares the cores runs with one BLAS
        // thread; the element-wise passes between GEMMs are single-threaded, so
        // this is the per-core efficiency of the products.
        if threads > 1 {
            BLAS.threads = 1
            for (key, value) in try measureProducts(spec: spec, kernels: kernels, sample: sample, direction: direction) {
                result["per_core_" + key] = value
            }
            BLAS.threads = threads
        }

        if !kernelsOnly {
            // A full function + gradient and one Newton iteration on the embedded cluster.
            let cluster = try await EmbeddedCluster(
                grid: PartitionGrid(unpartitioned: spec), data: trainingData, descriptor: descriptor, servers: 1,
                workers: workers, shardRows: 1000)
            try await cluster.coordinator.start(jobID: "bench", data: descriptor, weights: parameters)
            let objective = try Objective(cluster: cluster.coordinator, regularization: 0.01)
            var gradientSeconds = Double.infinity
            for _ in 0..<max(1, repeats / 2) {
                let clock = ContinuousClock.now
                _ = try await objective.valueAndGradient(at: .weights, into: .gradient)
                gradientSeconds = min(gradientSeconds, seconds(since: clock))
            }
            let gradientFlops = 2 * Double(trainingData.train.rows) * Self.gradientMultiplyAdds(spec)
            result["gradient_rows"] = Double(trainingData.train.rows)
            result["gradient_seconds"] = gradientSeconds
            result["gradient_gflops"] = gradientFlops / gradientSeconds / 1e9

            let newton = try NewtonCG(options: NewtonOptions(), secondOrder: SecondOrderOptions(), seed: 1, objective: objective)
            let summary = try await newton.train(budget: TrainingBudget(maxIterations: 1))
            if let record = summary.records.last, record.iteration == 1 {
                result["newton_iteration_seconds"] = record.elapsedSeconds - summary.records[0].elapsedSeconds
                result["newton_cg_iterations"] = Double(record.cgIterations)
                for (phase, t) in record.phaseSeconds { result["newton_\(phase)_seconds"] = t }
            }
        }
        for (key, value) in try await measureWire() { result[key] = value }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        var json = String(decoding: try encoder.encode(result), as: UTF8.self)
        json.insert(
            contentsOf: "\n  \"blas_kernel\" : \"\(BLAS.kernel)\",\n  \"data\" : \"\(source)\",", at: json.index(after: json.startIndex))
        print(json)
    }

    /// Times both Gauss-Newton products and sgemm on their GEMM shapes with
    /// the current number of BLAS threads.
    private func measureProducts(spec: NetworkSpec, kernels: RowKernels, sample: Dataset, direction: DenseParameters) throws -> [String:
        Double]
    {
        let s = sample.rows
        var result = [String: Double]()
        // The R-operator product and sgemm on exactly its GEMM shapes.
        let ropShapes = Self.ropProductShapes(spec, rows: s)
        let ropFlops = ropShapes.reduce(0) { $0 + $1.flops }
        let ropGemm = GemmSet(ropShapes)
        let ropSeconds = best(repeats) {
            let pass = kernels.forward(inputs: sample.features, rows: s)
            _ = kernels.gaussNewtonProduct(pass, direction: direction)
        }
        let sgemmSeconds = best(repeats) { ropGemm.run() }
        result["sgemm_gflops"] = ropFlops / sgemmSeconds / 1e9
        result["gn_product_rop_seconds"] = ropSeconds
        result["gn_product_rop_gflops"] = ropFlops / ropSeconds / 1e9
        result["gn_product_rop_vs_sgemm"] = sgemmSeconds / ropSeconds

        // The cached-Jacobian product on the unpartitioned grid, against sgemm
        // on its GEMM shapes.
        let grid = PartitionGrid(unpartitioned: spec)
        let cacheClock = ContinuousClock.now
        let pass = kernels.forward(inputs: sample.features, rows: s)
        let slices = kernels.jacobianSlices(pass)
        let outputs = pass.outputs
        let shares = grid.blocks.map { b in
            SliceShare.columns(
                of: slices[b.layer - 1], classes: spec.classes, fullWidth: spec.layerSizes[b.layer], columns: grid.outputRange(b))
        }
        let caches = try zip(grid.blocks, shares).map { b, share in
            var cache = BlockJacobian(
                rows: s, classes: spec.classes, inputWidth: grid.inputRange(b).count,
                outputWidth: grid.outputRange(b).count, hasBias: true)
            try cache.store(rowOffset: 0, inputs: pass.activations[b.layer - 1], slices: share)
            return cache
        }
        let cacheSeconds = seconds(since: cacheClock)
        let packedSliceBytes = shares.reduce(0) { bytes, share in
            let packed = share.packed
            return bytes + packed.keptColumns.count + packed.values.count * 4
        }
        let blockDirections = grid.split(direction)
        let jacobianShapes = grid.blocks.flatMap { b -> [GemmShape] in
            let i = grid.inputRange(b).count
            let j = grid.outputRange(b).count
            return [
                GemmShape(m: s, n: j, k: i, transposeA: false, transposeB: false),
                GemmShape(m: i, n: j, k: s, transposeA: true, transposeB: false),
            ]
        }
        let batchedFlops = grid.blocks.reduce(0.0) { $0 + 4 * Double(s * spec.classes * grid.outputRange($1).count) }
        let jacobianFlops = jacobianShapes.reduce(0) { $0 + $1.flops } + batchedFlops
        let jacobianGemm = GemmSet(jacobianShapes)
        let jacobianSeconds = best(repeats) {
            var jv = [Float](repeating: 0, count: s * spec.classes)
            for (cache, v) in zip(caches, blockDirections) {
                for (k, x) in cache.jacobianProduct(v).enumerated() { jv[k] += x }
            }
            var u = [Float](repeating: 0, count: jv.count)
            outputs.withUnsafeBufferPointer { z in
                jv.withUnsafeBufferPointer { j in
                    u.withUnsafeMutableBufferPointer { o in
                        spec.loss.curvatureProduct(outputs: z, j, classes: spec.classes, into: o)
                    }
                }
            }
            for cache in caches { _ = cache.jacobianTransposeProduct(u) }
        }
        let jacobianGemmSeconds = best(repeats) { jacobianGemm.run() }
        result["jacobian_cache_seconds"] = cacheSeconds
        result["jacobian_cache_megabytes"] = Double(caches.reduce(0) { $0 + ($1.slices.count + $1.inputs.count) * 4 }) / 1e6
        result["jacobian_slices_packed_over_dense"] = Double(packedSliceBytes) / Double(caches.reduce(0) { $0 + $1.slices.count * 4 })
        result["sgemm_jacobian_shapes_gflops"] = jacobianShapes.reduce(0) { $0 + $1.flops } / jacobianGemmSeconds / 1e9
        result["gn_product_jacobian_seconds"] = jacobianSeconds
        result["gn_product_jacobian_gflops"] = jacobianFlops / jacobianSeconds / 1e9
        result["gn_product_jacobian_vs_sgemm"] = (jacobianFlops / jacobianSeconds) / (ropFlops / sgemmSeconds)
        return result
    }

    /// The gRPC transport on loopback: 1 MiB tensor reads and writes against
    /// a parameter server in this process, and the latency of an empty call.
    func measureWire() async throws -> [String: Double] {
        let service = GRPCServerService(
            listen: Endpoint(host: "127.0.0.1", port: 0), services: [ParameterServerService(core: ServerCore())],
            maxRequestBytes: WireSettings.maxMessageBytes, credentials: .open)
        let serving = Task { try await service.run() }
        defer { serving.cancel() }
        let connection = try GRPCConnection(to: Endpoint(host: "127.0.0.1", port: try await service.boundPort), credentials: .open)
        defer { connection.close() }
        let server = RemoteParameterServer(connection: connection, role: "bench")
        // One block of 512 × 512 weights + 512 biases: 1 MiB of float32.
        let spec = try NetworkSpec(layerSizes: [512, 512], activations: [], loss: .squared)
        let grid = PartitionGrid(unpartitioned: spec)
        let block = [Float](repeating: 0.5, count: grid.parameterCount(grid.blocks[0]))
        try await server.assign(BlockAssignment(jobID: "wire", grid: grid, blocks: [0], weights: [block]))
        let mebibytes = Double(block.count * 4) / 1_048_576
        var read = Double.infinity
        var write = Double.infinity
        var tiny = [Double]()
        for _ in 0..<max(repeats, 3) * 4 {
            var clock = ContinuousClock.now
            _ = try await server.read(.weights, blocks: [0])
            read = min(read, seconds(since: clock))
            clock = ContinuousClock.now
            try await server.write(.trial, blocks: [0], values: [block])
            write = min(write, seconds(since: clock))
        }
        for _ in 0..<200 {
            let clock = ContinuousClock.now
            _ = try await server.run([])
            tiny.append(seconds(since: clock))
        }
        tiny.sort()
        return [
            "wire_read_mib_per_s": mebibytes / read,
            "wire_write_mib_per_s": mebibytes / write,
            "wire_empty_call_median_ms": tiny[tiny.count / 2] * 1000,
        ]
    }

    private func loadData(spec: NetworkSpec) throws -> (TrainingData, DataDescriptor, String) {
        if spec.inputs == 784 && spec.classes == 10 && FileManager.default.fileExists(atPath: data) {
            let descriptor = DataDescriptor(
                source: .files(format: .idx, train: data, test: nil, csvLabelColumn: 0, csvHeader: nil), scaling: .unitRange)
            var loaded = try descriptor.load()
            if loaded.train.rows > rows { loaded.train = loaded.train.subset(0..<rows) }
            return (loaded, descriptor, "fashion-mnist")
        }
        let descriptor = DataDescriptor(
            source: .synthetic(trainRows: rows, testRows: 0, features: spec.inputs, classes: spec.classes, seed: 1), scaling: .none)
        return (try descriptor.load(), descriptor, "synthetic")
    }

    /// The GEMMs of one R-operator Gauss-Newton product on `rows` rows:
    /// forward, R-forward (`Z V` and `R{Z} W`) and backward (`ZᵀΔ`, `ΔWᵀ`).
    static func ropProductShapes(_ spec: NetworkSpec, rows: Int) -> [GemmShape] {
        var shapes = [GemmShape]()
        for m in 1...spec.depth {
            let nIn = spec.layerSizes[m - 1]
            let nOut = spec.layerSizes[m]
            shapes.append(GemmShape(m: rows, n: nOut, k: nIn, transposeA: false, transposeB: false))  // forward
            shapes.append(GemmShape(m: rows, n: nOut, k: nIn, transposeA: false, transposeB: false))  // Z V
            if m > 1 {
                shapes.append(GemmShape(m: rows, n: nOut, k: nIn, transposeA: false, transposeB: false))  // R{Z} W
                shapes.append(GemmShape(m: rows, n: nIn, k: nOut, transposeA: false, transposeB: true))  // Δ Wᵀ
            }
            shapes.append(GemmShape(m: nIn, n: nOut, k: rows, transposeA: true, transposeB: false))  // Zᵀ Δ
        }
        return shapes
    }

    /// How evenly `train`'s layout shares a Newton iteration's work among 2
    /// servers (parameters, so the FLOPs of every CG product) and 2 workers
    /// (rows of the Jacobian cache), as the largest share over the mean (1
    /// is even): one block per layer and 1000-row shards before, the
    /// balanced grid and the Jacobian cache in a multiple of twelve shards now.
    static func layoutImbalance(_ spec: NetworkSpec, subsample: Int, shardRows: Int) -> [String: Double] {
        let workers = 2
        /// The largest share of two workers over the mean, for shards of these sizes.
        func imbalance(_ sizes: [Int]) -> Double {
            let runs = min(workers, sizes.count)
            // The coordinator hands worker r the contiguous run of shards r·n/runs ..< (r+1)·n/runs.
            let rows = (0..<runs).map { r in sizes[(r * sizes.count / runs)..<((r + 1) * sizes.count / runs)].reduce(0, +) }
            return Double(rows.max()! * workers) / Double(subsample)
        }
        let jacobianShards = ClusterCoordinator.jacobianShardCount(rows: subsample, shardRows: shardRows)
        return [
            "servers2_imbalance_one_block_per_layer": PartitionGrid(unpartitioned: spec).ownershipImbalance(servers: 2),
            "servers2_imbalance_balanced_grid": PartitionGrid.balanced(spec: spec, servers: 2).ownershipImbalance(servers: 2),
            "workers2_jacobian_imbalance_fixed_shards": imbalance(
                stride(from: 0, to: subsample, by: shardRows).map { min(shardRows, subsample - $0) }),
            "workers2_jacobian_imbalance_twelve_shards": imbalance(
                ClusterCoordinator.shardSizes(rows: subsample, count: jacobianShards)),
        ]
    }

    /// Multiply-adds per row of a function + gradient evaluation.
    static func gradientMultiplyAdds(_ spec: NetworkSpec) -> Double {
        (1...spec.depth).reduce(0.0) { total, m in
            let size = Double(spec.layerSizes[m - 1] * spec.layerSizes[m])
            return total + size * (m > 1 ? 3 : 2)
        }
    }
}

/// One sgemm call's shape: `op(A)` is `m × k`, `op(B)` is `k × n`.
struct GemmShape {
    var m, n, k: Int
    var transposeA, transposeB: Bool
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// Operands for a list of GEMM shapes, allocated once and filled with noise.
final class GemmSet {
    private let shapes: [GemmShape]
    private var a: [[Float]], b: [[Float]], c: [[Float]]

    init(_ shapes: [GemmShape]) {
        self.shapes = shapes
        var rng = SeededGenerator(seed: 3)
        func noise(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit()) } }
        a = shapes.map { noise($0.m * $0.k) }
        b = shapes.map { noise($0.k * $0.n) }
        c = shapes.map { [Float](repeating: 0, count: $0.m * $0.n) }
    }

    func run() {
        for (i, s) in shapes.enumerated() {
            a[i].withUnsafeBufferPointer { ap in
                b[i].withUnsafeBufferPointer { bp in
                    c[i].withUnsafeMutableBufferPointer { cp in
                        BLAS.gemm(
                            transposeA: s.transposeA, transposeB: s.transposeB, m: s.m, n: s.n, k: s.k,
                            ap.baseAddress!, lda: s.transposeA ? s.m : s.k, bp.baseAddress!, ldb: s.transposeB ? s.k : s.n,
                            cp.baseAddress!, ldc: s.n)
                    }
                }
            }
        }
    }
}

/// The fastest of `repeats` runs of `body`, in seconds (after one warm-up run).
func best(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    var fastest = Double.infinity
    for _ in 0..<max(1, repeats) {
        let clock = ContinuousClock.now
        body()
        fastest = min(fastest, seconds(since: clock))
    }
    return fastest
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
