import Foundation
import GRDB
import NewtonTraining

/// Where a submitted job is in its life.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case queued, running, succeeded, failed, cancelled
}

/// One job as the store keeps it.
public struct JobRow: Sendable, Equatable {
    /// Short and unique: `job-0001`, `job-0002`, … in creation order.
    public var id: String
    public var name: String
    public var state: JobState
    /// The spec as submitted.
    public var specYAML: String
    public var createdAt: Date
    public var updatedAt: Date
    /// The iteration number of the last record appended.
    public var iterations: Int
    /// The objective of the last record appended.
    public var objective: Double?
    /// The test accuracy of the last record appended.
    public var testAccuracy: Double?
    public var stopReason: String?
    public var error: String?
}

/// The driver's durable record of jobs, their iteration records and their
/// trained models: one SQLite file in WAL mode, versioned by migrations.
/// Every write is one transaction; an unknown job id is an
/// `.invalidRequest` error, any database failure a `.store` error.
public final class JobStore: Sendable {
    /// The database file.
    public let path: String
    private let database: DatabasePool

    /// Opens the store at `path`, creating the file and its tables if needed.
    public init(path: String) throws {
        self.path = path
        do {
            let database = try DatabasePool(path: path)
            if try database.read({ try Self.migrator.hasBeenSuperseded($0) }) {
                throw DriverError(.store, "the job store \(path) was written by a newer newtonps")
            }
            try Self.migrator.migrate(database)
            self.database = database
        } catch let error as DriverError {
            throw error
        } catch {
            throw DriverError(.store, "cannot open \(path) as a job store", cause: error)
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE job (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        name TEXT NOT NULL,
                        state TEXT NOT NULL,
                        spec_yaml TEXT NOT NULL,
                        created_at REAL NOT NULL,
                        updated_at REAL NOT NULL,
                        iterations INTEGER NOT NULL DEFAULT 0,
                        objective REAL,
                        test_accuracy REAL,
                        stop_reason TEXT,
                        error TEXT
                    );
                    CREATE TABLE iteration (
                        job_id TEXT NOT NULL REFERENCES job(id) ON DELETE CASCADE,
                        iteration INTEGER NOT NULL,
                        record BLOB NOT NULL,
                        PRIMARY KEY (job_id, iteration)
                    );
                    CREATE TABLE model (
                        job_id TEXT PRIMARY KEY REFERENCES job(id) ON DELETE CASCADE,
                        bytes BLOB NOT NULL,
                        saved_at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2: checkpoints") { db in
            // A model now says which iteration it is from (NULL: saved by v1,
            // at the job's end).
            try db.execute(
                sql: """
                    ALTER TABLE model ADD COLUMN iteration INTEGER;
                    CREATE TABLE checkpoint (
                        job_id TEXT PRIMARY KEY REFERENCES job(id) ON DELETE CASCADE,
                        iteration INTEGER NOT NULL,
                        optimizer_state BLOB NOT NULL,
                        saved_at REAL NOT NULL
                    );
                    """)
        }
        return migrator
    }

    /// Stores a new job as `queued`.
    public func create(specYAML: String, name: String) throws -> JobRow {
        try write { db in
            let seq = try Int.fetchOne(db, sql: "SELECT IFNULL(MAX(seq), 0) + 1 FROM job") ?? 1
            let id = String(format: "job-%04d", seq)
            let now = Self.now()
            try db.execute(
                sql: """
                    INSERT INTO job (seq, id, name, state, spec_yaml, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [seq, id, name, JobState.queued.rawValue, specYAML, now, now])
            return try Self.row(db, id)
        }
    }

    /// Every job, in creation order.
    public func list() throws -> [JobRow] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM job ORDER BY seq").map(Self.jobRow) }
    }

    /// The job with this id, or nil.
    public func job(id: String) throws -> JobRow? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.jobRow) }
    }

    /// Sets a job's state, stop reason and error (nil clears them).
    @discardableResult
    public func setState(id: String, state: JobState, stopReason: String? = nil, error: String? = nil) throws -> JobRow {
        try write { db in
            try db.execute(
                sql: "UPDATE job SET state = ?, stop_reason = ?, error = ?, updated_at = ? WHERE id = ?",
                arguments: [state.rawValue, stopReason, error, Self.now(), id])
            return try Self.row(db, id)
        }
    }

    /// Adds an iteration record and makes it the job's latest (iterations,
    /// objective, test accuracy). A job has one record per iteration number.
    public func append(_ record: IterationRecord, job id: String) throws {
        let encoded = try Self.encode(record)
        try write { db in
            _ = try Self.row(db, id)
            let exists =
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM iteration WHERE job_id = ? AND iteration = ?",
                    arguments: [id, record.iteration]) ?? false
            if exists { throw DriverError(.invalidRequest, "job \(id) already has a record of iteration \(record.iteration)") }
            try db.execute(
                sql: "INSERT INTO iteration (job_id, iteration, record) VALUES (?, ?, ?)",
                arguments: [id, record.iteration, encoded])
            try db.execute(
                sql: "UPDATE job SET iterations = ?, objective = ?, test_accuracy = ?, updated_at = ? WHERE id = ?",
                arguments: [record.iteration, record.objective, record.testAccuracy, Self.now(), id])
        }
    }

    /// A job's iteration records, in iteration order.
    public func records(job id: String) throws -> [IterationRecord] {
        let blobs = try read { db in
            _ = try Self.row(db, id)
            return try Data.fetchAll(db, sql: "SELECT record FROM iteration WHERE job_id = ? ORDER BY iteration", arguments: [id])
        }
        return try blobs.map(Self.decode)
    }

    /// A job's latest model: its safetensors bytes and the iteration whose
    /// weights they hold (nil for a model stored before iterations were
    /// recorded with it).
    public struct StoredModel: Sendable, Equatable {
        public var bytes: [UInt8]
        public var iteration: Int?

        public init(bytes: [UInt8], iteration: Int?) {
            self.bytes = bytes
            self.iteration = iteration
        }
    }

    /// A job's last checkpoint: the model of that iteration and the optimiser
    /// state that goes with it (see `Checkpoint.encodedOptimizerState()`).
    public struct StoredCheckpoint: Sendable, Equatable {
        public var iteration: Int
        public var model: [UInt8]
        public var optimizerState: [UInt8]

        public init(iteration: Int, model: [UInt8], optimizerState: [UInt8]) {
            self.iteration = iteration
            self.model = model
            self.optimizerState = optimizerState
        }
    }

    /// Records a checkpoint: the model of `iteration` becomes the job's
    /// exportable model and the optimiser state is kept beside it, in one
    /// transaction (the two never disagree).
    public func saveCheckpoint(job id: String, iteration: Int, model: [UInt8], optimizerState: [UInt8]) throws {
        try write { db in
            _ = try Self.row(db, id)
            let now = Self.now()
            try Self.saveModel(db, job: id, bytes: model, iteration: iteration, at: now)
            try db.execute(
                sql: "INSERT OR REPLACE INTO checkpoint (job_id, iteration, optimizer_state, saved_at) VALUES (?, ?, ?, ?)",
                arguments: [id, iteration, Data(optimizerState), now])
        }
    }

    /// A job's last checkpoint, or nil before its first.
    public func checkpoint(job id: String) throws -> StoredCheckpoint? {
        try read { db in
            _ = try Self.row(db, id)
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT c.iteration, c.optimizer_state, m.bytes FROM checkpoint c
                        JOIN model m ON m.job_id = c.job_id AND m.iteration = c.iteration WHERE c.job_id = ?
                        """, arguments: [id])
            else { return nil }
            let state: Data = try row.decode(forColumn: "optimizer_state")
            let model: Data = try row.decode(forColumn: "bytes")
            return StoredCheckpoint(
                iteration: try row.decode(forColumn: "iteration"), model: [UInt8](model), optimizerState: [UInt8](state))
        }
    }

    /// A job's latest model, or nil before one is saved.
    public func model(job id: String) throws -> StoredModel? {
        try read { db in
            _ = try Self.row(db, id)
            guard let row = try Row.fetchOne(db, sql: "SELECT bytes, iteration FROM model WHERE job_id = ?", arguments: [id]) else {
                return nil
            }
            let bytes: Data = try row.decode(forColumn: "bytes")
            return StoredModel(bytes: [UInt8](bytes), iteration: try row.decode(forColumn: "iteration"))
        }
    }

    /// Ends a job: its final state and, when given, the model of its last
    /// iteration, in one transaction. The checkpoint is dropped: a finished
    /// job is never resumed.
    @discardableResult
    public func finish(
        id: String, state: JobState, stopReason: String?, error: String?, model: (bytes: [UInt8], iteration: Int)? = nil
    ) throws -> JobRow {
        try write { db in
            let now = Self.now()
            if let model { try Self.saveModel(db, job: id, bytes: model.bytes, iteration: model.iteration, at: now) }
            try db.execute(sql: "DELETE FROM checkpoint WHERE job_id = ?", arguments: [id])
            try db.execute(
                sql: "UPDATE job SET state = ?, stop_reason = ?, error = ?, updated_at = ? WHERE id = ?",
                arguments: [state.rawValue, stopReason, error, now, id])
            return try Self.row(db, id)
        }
    }

    /// Forgets a job's iteration records after `iteration` (all of them for
    /// nil), before a resumed run records those iterations again; the job's
    /// latest values become those of the last record kept.
    public func discardRecords(job id: String, after iteration: Int?) throws {
        try write { db in
            _ = try Self.row(db, id)
            try db.execute(
                sql: "DELETE FROM iteration WHERE job_id = ? AND iteration > ?", arguments: [id, iteration ?? -1])
            let last = try Data.fetchOne(
                db, sql: "SELECT record FROM iteration WHERE job_id = ? ORDER BY iteration DESC LIMIT 1", arguments: [id]
            ).map(Self.decode)
            try db.execute(
                sql: "UPDATE job SET iterations = ?, objective = ?, test_accuracy = ?, updated_at = ? WHERE id = ?",
                arguments: [last?.iteration ?? 0, last?.objective, last?.testAccuracy, Self.now(), id])
        }
    }

    /// The jobs a previous driver process left queued or running, in
    /// creation order, all set to `queued`: a running job resumes from its
    /// last checkpoint when its turn comes again.
    public func requeueAfterRestart() throws -> [(id: String, wasRunning: Bool)] {
        try write { db in
            let stranded = try Row.fetchAll(
                db, sql: "SELECT id, state FROM job WHERE state IN (?, ?) ORDER BY seq",
                arguments: [JobState.queued.rawValue, JobState.running.rawValue])
            let now = Self.now()
            return try stranded.map { row in
                let id: String = try row.decode(forColumn: "id")
                let state: String = try row.decode(forColumn: "state")
                try db.execute(
                    sql: "UPDATE job SET state = ?, updated_at = ? WHERE id = ?", arguments: [JobState.queued.rawValue, now, id])
                return (id, state == JobState.running.rawValue)
            }
        }
    }

    // MARK: - Plumbing

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try database.write(body) } catch { throw storeError(error) }
    }

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try database.read(body) } catch { throw storeError(error) }
    }

    /// Our own errors as they are; anything else names the store.
    private func storeError(_ error: any Error) -> DriverError {
        error as? DriverError ?? DriverError(.store, "job store \(path)", cause: error)
    }

    private static func saveModel(_ db: Database, job id: String, bytes: [UInt8], iteration: Int, at time: Double) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO model (job_id, bytes, iteration, saved_at) VALUES (?, ?, ?, ?)",
            arguments: [id, Data(bytes), iteration, time])
    }

    /// The row of job `id`, or `.invalidRequest` when there is none.
    private static func row(_ db: Database, _ id: String) throws -> JobRow {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]) else {
            throw DriverError(.invalidRequest, "no job \(id)")
        }
        return try jobRow(row)
    }

    private static func jobRow(_ row: Row) throws -> JobRow {
        let id: String = try row.decode(forColumn: "id")
        let stateName: String = try row.decode(forColumn: "state")
        guard let state = JobState(rawValue: stateName) else {
            throw DriverError(.store, "job \(id) has an unknown state '\(stateName)'")
        }
        return JobRow(
            id: id,
            name: try row.decode(forColumn: "name"),
            state: state,
            specYAML: try row.decode(forColumn: "spec_yaml"),
            createdAt: Date(timeIntervalSinceReferenceDate: try row.decode(forColumn: "created_at")),
            updatedAt: Date(timeIntervalSinceReferenceDate: try row.decode(forColumn: "updated_at")),
            iterations: try row.decode(forColumn: "iterations"),
            objective: try row.decode(forColumn: "objective"),
            testAccuracy: try row.decode(forColumn: "test_accuracy"),
            stopReason: try row.decode(forColumn: "stop_reason"),
            error: try row.decode(forColumn: "error"))
    }

    /// Seconds since the reference date: stored as REAL, they read back to
    /// the same `Date`.
    private static func now() -> Double { Date().timeIntervalSinceReferenceDate }

    private static let nonFinite = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    private static func encode(_ record: IterationRecord) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        do { return try encoder.encode(record) } catch {
            throw DriverError(.store, "cannot encode the record of iteration \(record.iteration)", cause: error)
        }
    }

    private static func decode(_ data: Data) throws -> IterationRecord {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        do { return try decoder.decode(IterationRecord.self, from: data) } catch {
            throw DriverError(.store, "a stored iteration record cannot be read", cause: error)
        }
    }
}
