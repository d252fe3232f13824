import Foundation
import NewtonDriver
import NewtonTraining
import NewtonTransport

/// What trust costs: one Newton job on real local processes (a driver, two
/// servers, two workers) run in plaintext, with mutual TLS, and with TLS
/// and a checkpoint after every iteration, back to back on the same data.
/// Reports the median seconds per Newton iteration of each and the ratios;
/// the three runs' objectives must be identical.
struct TrustBench {
    let data: String
    let iterations: Int

    private struct Setting {
        let name: String
        let tls: Bool
        let checkpointEvery: Int
    }

    private static let settings = [
        Setting(name: "plaintext", tls: false, checkpointEvery: 0),
        Setting(name: "tls", tls: true, checkpointEvery: 0),
        Setting(name: "tls_checkpoint_every_1", tls: true, checkpointEvery: 1),
    ]

    func json() async throws -> String {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var result = [String: Double]()
        var objectives = [[Double]]()
        for setting in Self.settings {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("newtonps-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let cluster = try await LocalCluster.start(
                binary: binary, store: directory.appendingPathComponent("jobs.sqlite").path, servers: 2, workers: 2,
                tls: setting.tls)
            defer { cluster.stop() }
            let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
            defer { client.close() }
            let job = try await client.submit(
                yaml:
                    "train: \(data)\nmax_iterations: \(iterations)\ncheckpoint_every: \(setting.checkpointEvery)\nworkers: 2\nservers: 2\n")
            try await client.watch(job.id) { _ in }
            let (info, _, records) = try await client.job(job.id)
            guard info.state == "succeeded", records.count == iterations + 1 else {
                throw ValidationErrorText("bench job (\(setting.name)) ended \(info.state): \(info.error)")
            }
            let perIteration = zip(records.dropFirst(), records).map { $0.elapsedSeconds - $1.elapsedSeconds }.sorted()
            result["\(setting.name)_seconds_per_iteration"] = perIteration[perIteration.count / 2]
            objectives.append(records.map(\.objective))
        }
        result["tls_over_plaintext"] = result["tls_seconds_per_iteration"]! / result["plaintext_seconds_per_iteration"]!
        result["checkpoint_over_tls"] =
            result["tls_checkpoint_every_1_seconds_per_iteration"]! / result["tls_seconds_per_iteration"]!
        result["identical_objectives"] = Set(objectives).count == 1 ? 1 : 0
        result["iterations"] = Double(iterations)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: try encoder.encode(result), as: UTF8.self)
    }
}
