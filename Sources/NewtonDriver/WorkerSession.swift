import Foundation
import GRPCCore
import NewtonCore
import NewtonObservability
import NewtonProto
import NewtonTraining
import NewtonTransport
import Synchronization

/// The driver's end of one worker's task stream. Requests go out in order on
/// the stream; each answer is matched to its request by id. When the stream
/// ends, every waiting request fails, so the coordinator re-runs that work on
/// another worker.
public final class WorkerSession: Sendable {
    public let peerID: String
    private struct State {
        var nextRequest: Int64 = 1
        var pending: [Int64: CheckedContinuation<Newtonps_V1_TaskResult, any Error>] = [:]
        var closed: DriverError?
    }

    private let state = Mutex(State())
    private let outgoing: AsyncStream<Newtonps_V1_DriverMessage>.Continuation
    /// Messages to write on the stream, in order.
    let messages: AsyncStream<Newtonps_V1_DriverMessage>

    init(peerID: String) {
        self.peerID = peerID
        (messages, outgoing) = AsyncStream.makeStream(of: Newtonps_V1_DriverMessage.self)
    }

    /// Sends a request and waits for the worker's answer (or a timeout).
    func request(_ build: (inout Newtonps_V1_DriverMessage) -> Void, timeout: Duration) async throws -> Newtonps_V1_TaskResult {
        var message = Newtonps_V1_DriverMessage()
        build(&message)
        let id: Int64 = try state.withLock { s in
            if let closed = s.closed { throw closed }
            defer { s.nextRequest += 1 }
            return s.nextRequest
        }
        message.requestID = id
        let outgoingMessage = message
        return try await withThrowingTaskGroup(of: Newtonps_V1_TaskResult.self) { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        let failure: (any Error)? = self.state.withLock { s in
                            if let closed = s.closed { return closed }
                            if Task.isCancelled { return CancellationError() }
                            s.pending[id] = continuation
                            return nil
                        }
                        if let failure { continuation.resume(throwing: failure) } else { self.outgoing.yield(outgoingMessage) }
                    }
                } onCancel: {
                    self.state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw DriverError(.unreachable, "worker \(self.peerID) did not answer request \(id) within \(timeout)")
            }
            defer { group.cancelAll() }
            do {
                let result = try await group.next()!
                return result
            } catch {
                state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: error)
                throw error
            }
        }
    }

    /// Hands an answer from the stream to its waiting request.
    func receive(_ result: Newtonps_V1_TaskResult) {
        state.withLock { $0.pending.removeValue(forKey: result.requestID) }?.resume(returning: result)
    }

    /// Ends the session: every waiting and later request fails with `reason`.
    func close(_ reason: DriverError) {
        let waiting = state.withLock { s -> [CheckedContinuation<Newtonps_V1_TaskResult, any Error>] in
            if s.closed == nil { s.closed = reason }
            defer { s.pending.removeAll() }
            return Array(s.pending.values)
        }
        outgoing.finish()
        for continuation in waiting { continuation.resume(throwing: reason) }
    }

    var isClosed: Bool { closeReason != nil }

    /// Why the session was closed; nil while it is open.
    var closeReason: DriverError? { state.withLock { $0.closed } }
}

/// A worker process seen through its session: the `Worker` protocol the
/// coordinator uses, carried over the task stream.
public struct RemoteWorker: Worker {
    public let session: WorkerSession
    /// gRPC endpoints of the job's servers, in the coordinator's server order.
    public let serverEndpoints: [Endpoint]
    public let timeout: Duration

    public init(session: WorkerSession, serverEndpoints: [Endpoint], timeout: Duration = .seconds(600)) {
        self.session = session
        self.serverEndpoints = serverEndpoints
        self.timeout = timeout
    }

    public func prepare(_ job: WorkerJob) async throws {
        var wire = Newtonps_V1_WorkerJob()
        wire.jobID = job.jobID
        wire.grid = job.grid.wire
        wire.ownership = job.ownership.map(Int32.init)
        wire.servers = serverEndpoints.map(\.description)
        wire.data = job.data.wire
        if let indexed = job.indexed { wire.indexedData = Data(try indexed.encoded()) }
        let result = try await session.request({ $0.prepare = wire }, timeout: timeout)
        if !result.error.isEmpty {
            throw DriverError(.remote, "worker \(session.peerID) could not prepare job \(job.jobID): \(result.error)")
        }
    }

    public func run(_ task: WorkerTask) async throws -> [ShardResult] {
        let clock = ContinuousClock.now
        let result = try await session.request({ $0.task = task.wire }, timeout: timeout)
        RPCMetrics.observe(
            role: "driver", method: "WorkerTask", side: .client, requestBytes: 0,
            responseBytes: result.tensorBytes, seconds: seconds(since: clock), failed: !result.error.isEmpty)
        if !result.error.isEmpty {
            throw DriverError(.remote, "worker \(session.peerID) failed shards \(task.shards.map(\.index)): \(result.error)")
        }
        return try result.shards.map(ShardResult.init(wire:))
    }
}
