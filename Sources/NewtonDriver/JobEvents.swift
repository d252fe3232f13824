import NewtonProto
import NewtonTraining
import Synchronization

/// Fans each job's iteration records and its end out to everyone watching.
public final class JobEvents: Sendable {
    private let watchers = Mutex<[String: [Int: AsyncStream<Newtonps_V1_WatchEvent>.Continuation]]>([:])
    private let counter = Mutex(0)

    public init() {}

    /// A stream of the job's events from now on; it ends after the job's end.
    func subscribe(_ jobID: String) -> AsyncStream<Newtonps_V1_WatchEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: Newtonps_V1_WatchEvent.self, bufferingPolicy: .unbounded)
        let key = counter.withLock { c in
            c += 1
            return c
        }
        watchers.withLock { $0[jobID, default: [:]][key] = continuation }
        continuation.onTermination = { [weak self] _ in
            self?.watchers.withLock { _ = $0[jobID]?.removeValue(forKey: key) }
        }
        return stream
    }

    func publish(_ record: IterationRecord, job jobID: String) {
        var event = Newtonps_V1_WatchEvent()
        event.record = record.wire
        for c in watchers.withLock({ Array(($0[jobID] ?? [:]).values) }) { c.yield(event) }
    }

    func finish(_ summary: Newtonps_V1_JobSummary) {
        var event = Newtonps_V1_WatchEvent()
        event.finished = summary
        let ending = watchers.withLock { $0.removeValue(forKey: summary.id) ?? [:] }
        for c in ending.values {
            c.yield(event)
            c.finish()
        }
    }
}
