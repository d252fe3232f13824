import Foundation
import NewtonCore
import NewtonDriver
import NewtonObservability
import NewtonRoles
import NewtonTraining
import NewtonTransport

/// Data-parallel scaling of the Hessian-vector product (the Hessian-free
/// workhorse): measured on this machine for 1, 2, 4 and 8 workers, and
/// projected to N machines from measured compute and communication costs.
///
/// The model. One product over s shards of a curvature batch, on N machines
/// each running one single-threaded worker, with the weight blocks on m
/// servers: every worker pulls the weights and the direction (2·4P bytes)
/// and pushes one product per shard it holds (4P bytes each, ⌈s/N⌉ shards),
/// and the servers receive 4P·s bytes in all, split over m. So
///
///     T(N) = C·⌈s/N⌉/s + max(8P + 4P·⌈s/N⌉, 4P·s/m) / B + 3ℓ
///
/// with C the compute time of the whole product on one core, B the
/// measured transfer rate of one connection and ℓ the measured latency of
/// an empty call (begin, work, finish). Speed-up(N) = T(1)/T(N).
struct ScalingBench {
    let spec: NetworkSpec
    let data: TrainingData
    let descriptor: DataDescriptor
    let rows: Int
    let repeats: Int
    let wire: [String: Double]

    static let servers = 2
    static let shardRows = 1000

    func json(source: String) async throws -> String {
        let batch = Array(0..<min(rows, data.train.rows))
        let parameterCount = DenseParameters(zeros: spec).count
        var measured = [[String: Double]]()
        var singleCoreCompute = 0.0
        for workers in [1, 2, 4, 8] {
            let cluster = try await EmbeddedCluster(
                grid: PartitionGrid(unpartitioned: spec), data: data, descriptor: descriptor,
                servers: Self.servers, workers: workers, shardRows: Self.shardRows
            ).coordinator
            try await cluster.start(jobID: "scaling", data: descriptor, weights: DenseParameters(heNormal: spec, seed: 1))
            try await cluster.run([.combine(target: .direction, terms: [VectorTerm(1, .weights)])])
            let shards = cluster.shards(.train, rows: batch)
            let wall = try await bestSeconds(repeats) {
                try await cluster.hessianProduct(at: .weights, direction: .direction, into: .product, shards: shards)
            }
            if workers == 1 { singleCoreCompute = try computeSeconds(shards.count) }
            let cores = Double(min(workers, ProcessInfoCores.count))
            let compute = singleCoreCompute / cores
            let bytesPerWorker =
                Double(8 * parameterCount) + Double(4 * parameterCount) * (Double(shards.count) / Double(workers)).rounded(.up)
            measured.append([
                "workers": Double(workers), "seconds": wall, "compute_s": compute,
                "waiting_s": max(0, wall - compute),
                "bytes_per_worker": bytesPerWorker,
                "bytes_s_at_measured_rate": bytesPerWorker / rate,
                "compute_fraction": min(1, compute / wall),
            ])
        }
        let shardCount = Double((batch.count + Self.shardRows - 1) / Self.shardRows)
        let projection = [1, 2, 4, 8, 16].map { n -> [String: Double] in
            let t = project(nodes: n, compute: singleCoreCompute, shards: shardCount, parameters: Double(parameterCount))
            return [
                "nodes": Double(n), "seconds": t,
                "speedup": project(
                    nodes: 1, compute: singleCoreCompute, shards: shardCount,
                    parameters: Double(parameterCount)) / t,
            ]
        }
        let report: [String: Any] = [
            "data": source, "curvature_rows": batch.count, "shards": shardCount, "parameters": parameterCount,
            "single_core_compute_s": singleCoreCompute, "wire_mib_per_s": rate / 1_048_576, "wire_latency_ms": latency * 1000,
            "servers": Self.servers, "measured": measured, "projected": projection,
        ]
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: json, as: UTF8.self)
    }

    /// Bytes per second of one connection (the slower of read and write).
    private var rate: Double { min(wire["wire_read_mib_per_s"] ?? 1, wire["wire_write_mib_per_s"] ?? 1) * 1_048_576 }
    private var latency: Double { (wire["wire_empty_call_median_ms"] ?? 1) / 1000 }

    private func project(nodes: Int, compute: Double, shards: Double, parameters: Double) -> Double {
        let perNode = (shards / Double(nodes)).rounded(.up)
        let workerBytes = 8 * parameters + 4 * parameters * perNode
        let serverBytes = 4 * parameters * shards / Double(Self.servers)
        return compute * perNode / shards + max(workerBytes, serverBytes) / rate + 3 * latency
    }

    /// The product's kernels alone, one core, over the same shards.
    private func computeSeconds(_ shardCount: Int) throws -> Double {
        let kernels = RowKernels(parameters: DenseParameters(heNormal: spec, seed: 1))
        let direction = DenseParameters(heNormal: spec, seed: 1)
        let parts = (0..<shardCount).map { k in
            data.train.subset((k * Self.shardRows)..<min((k + 1) * Self.shardRows, min(rows, data.train.rows)))
        }
        return best(repeats) {
            for part in parts {
                _ = kernels.hessianProduct(
                    kernels.forward(inputs: part.features, rows: part.rows), labels: part.labels, direction: direction)
            }
        }
    }

    private func bestSeconds(_ repeats: Int, _ body: () async throws -> Void) async throws -> Double {
        try await body()
        var fastest = Double.infinity
        for _ in 0..<max(1, repeats) {
            let clock = ContinuousClock.now
            try await body()
            fastest = min(fastest, seconds(since: clock))
        }
        return fastest
    }
}
