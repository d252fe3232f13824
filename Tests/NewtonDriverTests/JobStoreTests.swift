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

    func testCheckpointsAndTheFinalModel() throws {
        let store = try JobStore(path: path)
        let job = try store.create(specYAML: "synthetic: {}\n", name: "model")
        XCTAssertNil(try store.model(job: job.id))
        XCTAssertNil(try store.checkpoint(job: job.id))
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try store.saveCheckpoint(job: job.id, iteration: 2, model: bytes, optimizerState: [4, 5])
        XCTAssertEqual(try store.model(job: job.id), JobStore.StoredModel(bytes: bytes, iteration: 2))
        XCTAssertEqual(
            try store.checkpoint(job: job.id), JobStore.StoredCheckpoint(iteration: 2, model: bytes, optimizerState: [4, 5]))
        try store.saveCheckpoint(job: job.id, iteration: 4, model: [1, 2, 3], optimizerState: [])
        XCTAssertEqual(try store.checkpoint(job: job.id)?.iteration, 4)
        XCTAssertEqual(try store.model(job: job.id), JobStore.StoredModel(bytes: [1, 2, 3], iteration: 4))

        // Finishing stores the final model and drops the checkpoint.
        let row = try store.finish(id: job.id, state: .succeeded, stopReason: "iteration-limit", error: nil, model: ([7], 5))
        XCTAssertEqual(row.state, .succeeded)
        XCTAssertNil(try store.checkpoint(job: job.id))
        XCTAssertEqual(try store.model(job: job.id), JobStore.StoredModel(bytes: [7], iteration: 5))
        assertError(.invalidRequest, "no job nope") { _ = try store.model(job: "nope") }
        assertError(.invalidRequest, "no job nope") { try store.saveCheckpoint(job: "nope", iteration: 0, model: [], optimizerState: []) }
    }

    func testDiscardingRecordsAfterACheckpoint() throws {
        let store = try JobStore(path: path)
        let job = try store.create(specYAML: "synthetic: {}\n", name: "resume")
        for i in 0...4 { try store.append(record(i, accuracy: Double(i) / 10), job: job.id) }
        try store.discardRecords(job: job.id, after: 2)
        XCTAssertEqual(try store.records(job: job.id).map(\.iteration), [0, 1, 2])
        XCTAssertEqual(try store.job(id: job.id)?.iterations, 2)
        XCTAssertEqual(try store.job(id: job.id)?.testAccuracy, 0.2)
        try store.append(record(3), job: job.id)
        try store.discardRecords(job: job.id, after: nil)
        XCTAssertEqual(try store.records(job: job.id), [])
        XCTAssertEqual(try store.job(id: job.id)?.iterations, 0)
        XCTAssertNil(try store.job(id: job.id)?.objective)
    }

    func testStateSurvivesReopening() throws {
        var expected = [JobRow]()
        do {
            let store = try JobStore(path: path)
            let job = try store.create(specYAML: "synthetic: {}\n", name: "persisted")
            try store.append(record(0, accuracy: 0.1), job: job.id)
            try store.saveCheckpoint(job: job.id, iteration: 0, model: [9, 8, 7], optimizerState: [6])
            try store.finish(id: job.id, state: .failed, stopReason: nil, error: "worker lost")
            expected = try store.list()
        }
        let reopened = try JobStore(path: path)
        XCTAssertEqual(try reopened.list(), expected)
        XCTAssertEqual(try reopened.job(id: "job-0001")?.error, "worker lost")
        XCTAssertEqual(try reopened.records(job: "job-0001"), [record(0, accuracy: 0.1)])
        // A failed job keeps its last checkpoint's model for export.
        XCTAssertEqual(try reopened.model(job: "job-0001"), JobStore.StoredModel(bytes: [9, 8, 7], iteration: 0))
        XCTAssertEqual(try reopened.create(specYAML: "x: 1\n", name: "next").id, "job-0002")
    }

    func testJobsLeftByAStoppedDriverAreQueuedAgain() throws {
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
        let requeued = try store.requeueAfterRestart()
        XCTAssertEqual(requeued.map(\.id), [ids[0], ids[2]])
        XCTAssertEqual(requeued.map(\.wasRunning), [true, false])
        XCTAssertEqual(try store.list().map(\.state), [.queued, .succeeded, .queued])
        XCTAssertEqual(try store.requeueAfterRestart().map(\.id), [ids[0], ids[2]])
    }

    func testGarbageFileIsAClearError() throws {
        try String(repeating: "not a database\n", count: 200).write(toFile: path, atomically: true, encoding: .utf8)
        assertError(.store, "cannot open \(path) as a job store") { _ = try JobStore(path: path) }
        assertError(.store, directory) { _ = try JobStore(path: directory) }
    }
}
