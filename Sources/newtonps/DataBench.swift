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
/// (VmHWM), the bytes streamed, seconds per Newton iteration and their
/// ratios to the in-memory run, and whether every run's objectives equal
/// the reference's as doubles.
struct DataBench {
    let data: String
    let format: DataFormat
    let cacheMegabytes: Int
    let hidden: [Int]
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
            servers: 2
            workers: 2
            seed: 1

            """
        let spec = try JobSpec.parse(yaml: yaml)
        let network = try spec.network(features: index.columns, classes: index.classNames.count)
        result["model_megabytes"] = Double(4 * DenseParameters(zeros: network).count) / 1_048_576
        result["cache_megabytes"] = Double(cacheMegabytes)

        // The reference: everything in memory, one BLAS thread like the worker processes.
        BLAS.threads = 1
        let reference = try await inMemoryRecords(spec, network: network)
        let inMemorySeconds = Self.medianIterationSeconds(reference)
        result["in_memory_seconds_per_iteration"] = inMemorySeconds
        result["index_over_in_memory_iteration"] = indexSeconds / inMemorySeconds

        for access in [DataAccess.local, .stream] {
            let run = try await clusterRun(yaml + "data_access: \(access.rawValue)\n", hideFiles: access == .stream)
            let name = access.rawValue
            result["\(name)_identical_objectives"] = run.records.map(\.objective) == reference.map(\.objective) ? 1 : 0
            result["\(name)_seconds_per_iteration"] = Self.medianIterationSeconds(run.records)
            result["\(name)_over_in_memory_iteration"] = Self.medianIterationSeconds(run.records) / inMemorySeconds
            result["\(name)_driver_peak_rss_megabytes"] = run.driverPeak
            result["\(name)_worker_peak_rss_megabytes"] = run.workerPeaks.max() ?? 0
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
        var workerPeaks: [Double]
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
        return ClusterRun(
            records: records, driverPeak: try Self.peakRSSMegabytes(cluster.driver.process.pid),
            workerPeaks: try cluster.workers.map { try Self.peakRSSMegabytes($0.process.pid) }, streamedBytes: streamed)
    }

    /// A process's peak resident set (VmHWM) in MiB.
    static func peakRSSMegabytes(_ pid: Int32) throws -> Double {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Double(line.split(separator: " ")[1])
        else { throw ValidationErrorText("/proc/\(pid)/status has no VmHWM line") }
        return kilobytes / 1024
    }

    /// The sum of a Prometheus metric's samples whose labels contain every one of `labels`.
    static func sum(_ text: String, _ name: String, labels: [String]) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && labels.allSatisfy($0.contains) }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// The median seconds between consecutive records.
    static func medianIterationSeconds(_ records: [IterationRecord]) -> Double {
        let steps = zip(records.dropFirst(), records).map { $0.elapsedSeconds - $1.elapsedSeconds }.sorted()
        return steps.isEmpty ? .nan : steps[steps.count / 2]
    }
}
