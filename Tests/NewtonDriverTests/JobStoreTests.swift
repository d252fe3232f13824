import Foundation
import NewtonDriver
import NewtonTraining
import XCTest

final class JobStoreTests: XCTestCase {
    private var directory = ""
    private var path: String { "\(directory)/jobs.sqlite" }

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(atPath: directory)
    }

    private func record(_ iteration: Int, accuracy: Double? = nil) -> IterationRecord {
        IterationRecord(
            iteration: iteration, elapsedSeconds: 0.25 * Double(iteration), objective: 1 / Double(iteration + 3),
            gradientNorm: 0.1, cgIterations: iteration * 2, lambda: 2.0 / 3.0, step: 0.5, lineSearchSteps: 1,
            testAccuracy: accuracy, outcome: iteration == 0 ? .start : .accepted,
            phaseSeconds: ["gradient": 0.125, "solve": Double(iteration)])
    }

    private func assertError(
        _ code: DriverError.Code, _ message: String, file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> Void
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual((error as? DriverError)?.code, code, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(message), "\(error)", file: file, line: line)
        }
    }

    func testCreateListAndGet() throws {
        let store = try JobStore(path: path)
        XCTAssertEqual(try store.list(), [])
        let first = try store.create(specYAML: "synthetic: {}\n", name: "first")
        let second = try store.create(specYAML: "synthetic: {features: 3}\n", name: "")
        XCTAssertEqual(first.id, "job-0001")
        XCTAssertEqual(second.id, "job-0002")
        XCTAssertEqual(first.state, .queued)
        XCTAssertEqual(first.specYAML, "synthetic: {}\n")
        XCTAssertEqual(first.iterations, 0)
        XCTAssertNil(first.objective)
        XCTAssertEqual(first.createdAt, first.updatedAt)
        XCTAssertEqual(try store.list(), [first, second])
        XCTAssertEqual(try store.job(id: "job-0002"), second)
        XCTAssertNil(try store.job(id: "job-0009"))

        let done = try store.setState(id: first.id, state: .succeeded, stopReason: "converged")
        XCTAssertEqual(done.state, .succeeded)
        XCTAssertEqual(done.stopReason, "converged")
        XCTAssertGreaterThanOrEqual(done.updatedAt, first.updatedAt)
        XCTAssertEqual(try store.job(id: first.id), done)
        assertError(.invalidRequest, "no job job-0009") { try store.setState(id: "job-0009", state: .running) }
    }

    func testRecordsComeBackInIterationOrder() throws {
        let store = try JobStore(path: path)
        let job = try store.create(specYAML: "synthetic: {}\n", name: "run")
        let records = [record(0), record(1, accuracy: 0.5), record(2, accuracy: 0.75)]
        for r in records { try store.append(r, job: job.id) }
        XCTAssertEqual(try store.records(job: job.id), records)

        let row = try XCTUnwrap(try store.job(id: job.id))
        XCTAssertEqual(row.iterations, 2)
        XCTAssertEqual(row.objective, records[2].objective)
        XCTAssertEqual(row.testAccuracy, 0.75)

        assertError(.invalidRequest, "already has a record of iteration 1") { try store.append(self.record(1), job: job.id) }
        assertError(.invalidRequest, "no job job-0042") { try store.append(self.record(0), job: "job-0042") }
        assertError(.invalidRequest, "no job job-0042") { _ = try store.records(job: "job-0042") }
        XCTAssertEqual(try store.records(job: job.id).count, 3)
    }

    func testModelBytesRoundTrip() throws {
        let store = try JobStore(path: path)
        let job = try store.create(specYAML: "synthetic: {}\n", name: "model")
        XCTAssertNil(try store.model(job: job.id))
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try store.saveModel(job: job.id, bytes: bytes)
        XCTAssertEqual(try store.model(job: job.id), bytes)
        try store.saveModel(job: job.id, bytes: [1, 2, 3])
        XCTAssertEqual(try store.model(job: job.id), [1, 2, 3])
        assertError(.invalidRequest, "no job nope") { _ = try store.model(job: "nope") }
    }

    func testStateSurvivesReopening() throws {
        var expected = [JobRow]()
        do {
            let store = try JobStore(path: path)
            let job = try store.create(specYAML: "synthetic: {}\n", name: "persisted")
            try store.append(record(0, accuracy: 0.1), job: job.id)
            try store.setState(id: job.id, state: .failed, error: "worker lost")
            try store.saveModel(job: job.id, bytes: [9, 8, 7])
            expected = try store.list()
        }
        let reopened = try JobStore(path: path)
        XCTAssertEqual(try reopened.list(), expected)
        XCTAssertEqual(try reopened.job(id: "job-0001")?.error, "worker lost")
        XCTAssertEqual(try reopened.records(job: "job-0001"), [record(0, accuracy: 0.1)])
        XCTAssertEqual(try reopened.model(job: "job-0001"), [9, 8, 7])
        XCTAssertEqual(try reopened.create(specYAML: "x: 1\n", name: "next").id, "job-0002")
    }

    func testRecoverAfterRestartFailsStrandedJobs() throws {
        let ids: [String]
        do {
            let store = try JobStore(path: path)
            let running = try store.create(specYAML: "synthetic: {}\n", name: "running")
            let done = try store.create(specYAML: "synthetic: {}\n", name: "done")
            let queued = try store.create(specYAML: "synthetic: {}\n", name: "queued")
            try store.setState(id: running.id, state: .running)
            try store.setState(id: done.id, state: .succeeded, stopReason: "iteration-limit")
            ids = [running.id, done.id, queued.id]
        }
        let store = try JobStore(path: path)
        XCTAssertEqual(try store.recoverAfterRestart(), [ids[0], ids[2]])
        let rows = try store.list()
        XCTAssertEqual(rows.map(\.state), [.failed, .succeeded, .failed])
        XCTAssertEqual(rows[0].error, "driver restarted while the job was running")
        XCTAssertEqual(rows[2].error, "driver restarted while the job was queued")
        XCTAssertNil(rows[1].error)
        XCTAssertEqual(try store.recoverAfterRestart(), [])
    }

    func testGarbageFileIsAClearError() throws {
        try String(repeating: "not a database\n", count: 200).write(toFile: path, atomically: true, encoding: .utf8)
        assertError(.store, "cannot open \(path) as a job store") { _ = try JobStore(path: path) }
        assertError(.store, directory) { _ = try JobStore(path: directory) }
    }
}
