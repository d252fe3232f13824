import Foundation
import NewtonCore
import NewtonDriver
import NewtonRoles
import NewtonTraining
import NewtonTransport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What reading data by blocks costs and holds: indexes a data file (timed),
/// trains on it in memory in this process (the reference, as `newtonps
/// train --blas-threads 1` does), then as a job on real local processes (a
/// driver, two servers, two workers with a bounded block cache) that read
/// the files, and again with the files hidden from the workers so that they
/// stream their blocks from the driver. Reports each role's peak RSS
/// (VmHWM) beside its resident set when idle (registered, before the job)
/// and what it must hold (`MemoryNeeds`), the bytes streamed, seconds per
/// Newton iteration and their ratios to the in-memory run, and whether
/// every run's objectives equal the reference's as doubles. `products`
/// chooses the Gauss-Newton products of every run.
struct DataBench {
    let data: String
    let format: DataFormat
    let cacheMegabytes: Int
    let hidden: [Int]
    let products: ProductsMode
    let iterations: Int

    func json() async throws -> String {
        var result = [String: Double]()
        let source = try DataSource.resolve(path: data, format: format, split: .train)
        let indexClock = ContinuousClock.now
        let index = try DataIndex.build(source)
        let indexSeconds = seconds(since: indexClock)
        let contentBytes = Double(index.contentBytes)
        result["content_megabytes"] = contentBytes / 1_048_576
        result["rows"] = Double(index.rows)
        result["index_seconds"] = indexSeconds
        result["index_seconds_per_gb"] = indexSeconds / (contentBytes / 1e9)

        let layers = [index.columns] + hidden + [index.classNames.count]
        let yaml = """
            train: \(data)
            format: \(format.rawValue)
            \(format == .idx ? "" : "no_test: true")
            layers: [\(layers.map(String.init).joined(separator: ", "))]
            max_iterations: \(iterations)
            products: \(products.rawValue)
            servers: 2
            workers: 2
            seed: 1

            """
        let spec = try JobSpec.parse(yaml: yaml)
        let network = try spec.network(features: index.columns, classes: index.classNames.count)
        result["model_megabytes"] = Double(4 * DenseParameters(zeros: network).count) / 1_048_576
        result["cache_megabytes"] = Double(cacheMegabytes)
        let needs = MemoryNeeds(
            grid: try spec.grid(for: network, servers: 2), servers: 2,
            // rop mode caches no Jacobian.
            subsampleRows: products == .jacobian ? Int((spec.newton.subsampleFraction * Double(index.rows)).rounded(.up)) : 0,
            shardRows: spec.shardRows, cacheMegabytes: Double(cacheMegabytes))
        result["server_must_hold_megabytes"] = needs.serverMegabytes
        result["worker_must_hold_megabytes"] = needs.workerMegabytes

        // The reference: everything in memory, one BLAS thread like the worker processes.
        BLAS.threads = 1
        let reference = try await inMemoryRecords(spec, network: network)
        let inMemorySeconds = Self.medianIterationSeconds(reference)
        result["in_memory_seconds_per_iteration"] = inMemorySeconds
        result["index_over_in_memory_iteration"] = indexSeconds / inMemorySeconds
        for (phase, seconds) in Self.medianPhaseSeconds(reference) { result["in_memory_phase_\(phase)_seconds"] = seconds }

        for access in [DataAccess.local, .stream] {
            let run = try await clusterRun(yaml + "data_access: \(access.rawValue)\n", hideFiles: access == .stream)
            let name = access.rawValue
            result["\(name)_identical_objectives"] = run.records.map(\.objective) == reference.map(\.objective) ? 1 : 0
            result["\(name)_seconds_per_iteration"] = Self.medianIterationSeconds(run.records)
            result["\(name)_over_in_memory_iteration"] = Self.medianIterationSeconds(run.records) / inMemorySeconds
            // Where the cluster's extra time goes, phase by phase.
            for (phase, seconds) in Self.medianPhaseSeconds(run.records) { result["\(name)_phase_\(phase)_seconds"] = seconds }
            result["\(name)_driver_peak_rss_megabytes"] = run.driverPeak
            result["\(name)_worker_peak_rss_megabytes"] = run.workerPeaks.max() ?? 0
            result["\(name)_server_peak_rss_megabytes"] = run.serverPeaks.max() ?? 0
            result["\(name)_driver_idle_rss_megabytes"] = run.idle.driver
            result["\(name)_server_idle_rss_megabytes"] = run.idle.server
            result["\(name)_worker_idle_rss_megabytes"] = run.idle.worker
            result["\(name)_server_peak_over_idle_and_must_hold"] = (run.serverPeaks.max() ?? 0) / (run.idle.server + needs.serverMegabytes)
            result["\(name)_worker_peak_over_idle_and_must_hold"] = (run.workerPeaks.max() ?? 0) / (run.idle.worker + needs.workerMegabytes)
            result["\(name)_worker_rss_over_cache_and_model_megabytes"] =
                (run.workerPeaks.max() ?? 0) - Double(cacheMegabytes) - result["model_megabytes"]!
            result["\(name)_streamed_bytes_per_worker_iteration_over_file"] =
                run.streamedBytes.reduce(0, +) / Double(run.streamedBytes.count) / Double(iterations) / contentBytes
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: try encoder.encode(result), as: UTF8.self)
    }

    private func inMemoryRecords(_ spec: JobSpec, network: NetworkSpec) async throws -> [IterationRecord] {
        let loaded = try spec.data.load()
        let cluster = try await EmbeddedCluster(
            grid: try spec.grid(for: network, servers: 2), data: loaded, descriptor: spec.data, servers: 2, workers: 2,
            shardRows: spec.shardRows)
        return try await spec.trainingJob(network: network).run(on: cluster.coordinator, jobID: "reference", data: spec.data).records
    }

    private struct ClusterRun {
        var records: [IterationRecord]
        var driverPeak: Double
        var serverPeaks: [Double]
        var workerPeaks: [Double]
        /// Resident sets once registered, before the job (the largest of each role).
        var idle: (driver: Double, server: Double, worker: Double)
        var streamedBytes: [Double]
    }

    /// Runs the job on local processes; with `hideFiles` the workers' data
    /// root is an empty directory, so they cannot read the files.
    private func clusterRun(_ yaml: String, hideFiles: Bool) async throws -> ClusterRun {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("newtonps-bench-\(UUID().uuidString)")
        let empty = directory.appendingPathComponent("no-data").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = try await LocalCluster.start(
            binary: binary, store: directory.appendingPathComponent("jobs.sqlite").path, servers: 2, workers: 2, tls: true,
            workerArguments: ["--data-cache-mb", String(cacheMegabytes)] + (hideFiles ? ["--data-root", empty] : []))
        defer { cluster.stop() }
        let idle = (
            driver: try Self.residentMegabytes(cluster.driver.process.pid, "VmRSS"),
            server: try cluster.servers.map { try Self.residentMegabytes($0.process.pid, "VmRSS") }.max() ?? 0,
            worker: try cluster.workers.map { try Self.residentMegabytes($0.process.pid, "VmRSS") }.max() ?? 0
        )
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let job = try await client.submit(yaml: yaml)
        try await client.watch(job.id) { _ in }
        let (info, _, records) = try await client.job(job.id)
        guard info.state == "succeeded", records.count == iterations + 1 else {
            throw ValidationErrorText("bench job ended \(info.state): \(info.error)")
        }
        var streamed = [Double]()
        for worker in cluster.workers {
            let (body, _) = try await URLSession.shared.data(from: URL(string: "http://\(worker.http)/metrics")!)
            let metrics = String(decoding: body, as: UTF8.self)
            streamed.append(Self.sum(metrics, "newtonps_rpc_bytes_total", labels: ["method=\"ReadDataBlock\"", "direction=\"received\""]))
        }
        let peak = { (member: LocalCluster.Member) in try Self.residentMegabytes(member.process.pid, "VmHWM") }
        return ClusterRun(
            records: records, driverPeak: try peak(cluster.driver), serverPeaks: try cluster.servers.map(peak),
            workerPeaks: try cluster.workers.map(peak), idle: idle, streamedBytes: streamed)
    }

    /// A resident-set figure of a process in MiB: `VmHWM` (the peak) or `VmRSS` (now).
    static func residentMegabytes(_ pid: Int32, _ field: String) throws -> Double {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
            let kilobytes = Double(line.split(separator: " ")[1])
        else { throw ValidationErrorText("/proc/\(pid)/status has no \(field) line") }
        return kilobytes / 1024
    }

    /// The sum of a Prometheus metric's samples whose labels contain every one of `labels`.
    static func sum(_ text: String, _ name: String, labels: [String]) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && labels.allSatisfy($0.contains) }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// Each phase's median seconds over the iterations (0 where an iteration skipped it).
    static func medianPhaseSeconds(_ records: [IterationRecord]) -> [String: Double] {
        let iterations = records.dropFirst()
        let phases = Set(iterations.flatMap(\.phaseSeconds.keys))
        return Dictionary(
            uniqueKeysWithValues: phases.map { phase in
                let values = iterations.map { $0.phaseSeconds[phase] ?? 0 }.sorted()
                return (phase, values[values.count / 2])
            })
    }

    /// The median seconds between consecutive records.
    static func medianIterationSeconds(_ records: [IterationRecord]) -> Double {
        let steps = zip(records.dropFirst(), records).map { $0.elapsedSeconds - $1.elapsedSeconds }.sorted()
        return steps.isEmpty ? .nan : steps[steps.count / 2]
    }
}

/// What each role of a Newton-CG job must hold, from the job's shapes alone:
/// the floor its resident set is measured against.
struct MemoryNeeds {
    /// Parameter-sized vectors a server keeps for its blocks during
    /// Newton-CG: weights, gradient, direction, residual, conjugate, product,
    /// trial and trial gradient.
    static let serverVectors = 8

    /// The most any one server must hold, in MiB.
    let serverMegabytes: Double
    /// What one worker must hold, in MiB.
    let workerMegabytes: Double

    init(grid: PartitionGrid, servers: Int, subsampleRows: Int, shardRows: Int, cacheMegabytes: Double) {
        let classes = grid.spec.classes
        var perServer = [Double](repeating: 0, count: servers)
        for (b, s) in grid.balancedOwnership(servers: servers).enumerated() {
            let block = grid.blocks[b]
            // Its vectors, and its Jacobian cache: each subsample row's inputs
            // to the block and the n_L × outputs slice.
            let cache = subsampleRows * (grid.inputRange(block).count + classes * grid.outputRange(block).count)
            perServer[s] += 4 * Double(Self.serverVectors * grid.parameterCount(block) + cache)
        }
        // Every server also keeps the subsample's outputs, which define B.
        serverMegabytes = (perServer.max()! + Double(4 * subsampleRows * classes)) / 1_048_576
        // A worker: its block cache; the weights, a direction, a shard's dense
        // result, its push group's running sum and the previous group, still
        // being pushed; and the larger of one shard's activations and
        // derivatives of every layer (a gradient) and two Jacobian shards'
        // with their slices (one computing, one being pushed).
        let parameters = Double(DenseParameters(zeros: grid.spec).count)
        let neurons = Double(grid.spec.layerSizes.reduce(0, +))
        let slices = Double(grid.spec.layerSizes.dropFirst().reduce(0, +) * classes)
        let jacobianRows =
            ClusterCoordinator.shardSizes(
                rows: subsampleRows, count: ClusterCoordinator.jacobianShardCount(rows: subsampleRows, shardRows: shardRows)
            ).max() ?? 0
        let rowValues = max(Double(shardRows) * 2 * neurons, 2 * Double(jacobianRows) * (2 * neurons + slices))
        workerMegabytes = cacheMegabytes + 4 * (5 * parameters + rowValues) / 1_048_576
    }
}
