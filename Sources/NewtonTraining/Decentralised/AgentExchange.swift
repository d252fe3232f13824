/// How an agent of a decentralised run trades vectors with its neighbours:
/// the one step of a round that crosses agents. In one process the agents
/// share an `ExchangeMailbox`; across processes (NewtonTransport) each
/// message is an RPC to the neighbour, which files it in its own mailbox.
public protocol AgentExchange: Sendable {
    /// Sends this agent's `vectors` of `round` to every agent in
    /// `neighbours` and returns each neighbour's, by agent index.
    func exchange(round: Int, vectors: [[Float]], with neighbours: [Int]) async throws -> [Int: [[Float]]]
}

/// The vectors that agents' neighbours sent them, held until each agent
/// collects its round's. A message for a round its recipient has already
/// collected is stale and refused, as is a second message from the same
/// sender for the same round; a recipient may get the next round's
/// messages before it asks for them (a faster neighbour moved on).
public actor ExchangeMailbox {
    private struct Key: Hashable {
        let round: Int
        let sender: Int
        let recipient: Int
    }

    private var messages = [Key: [[Float]]]()
    /// The last round each recipient collected.
    private var collected = [Int: Int]()
    private var waiters = [Int: (keys: [Key], continuation: CheckedContinuation<Void, any Error>)]()
    private var nextWaiter = 0

    public init() {}

    /// Files `vectors` from `sender` for `recipient`'s `round`.
    public func deliver(round: Int, from sender: Int, to recipient: Int, vectors: [[Float]]) throws {
        let last = collected[recipient] ?? 0
        guard round > last else {
            throw TrainingError(
                .invalidExchange,
                "agent \(sender)'s message for round \(round) is stale: agent \(recipient) has already mixed round \(last)")
        }
        guard round <= last + 1 else {
            throw TrainingError(
                .invalidExchange,
                "agent \(sender)'s message for round \(round) is too far ahead: agent \(recipient) has finished round \(last)")
        }
        let key = Key(round: round, sender: sender, recipient: recipient)
        guard messages[key] == nil else {
            throw TrainingError(.invalidExchange, "agent \(sender) sent agent \(recipient) two messages for round \(round)")
        }
        messages[key] = vectors
        for (id, waiter) in waiters where waiter.keys.allSatisfy({ messages[$0] != nil }) {
            waiters[id] = nil
            waiter.continuation.resume()
        }
    }

    /// Waits until every sender's message for `recipient`'s `round` is in,
    /// then takes them; throws `CancellationError` if the task is cancelled
    /// first.
    public func collect(round: Int, for recipient: Int, from senders: [Int]) async throws -> [Int: [[Float]]] {
        let keys = senders.map { Key(round: round, sender: $0, recipient: recipient) }
        if !keys.allSatisfy({ messages[$0] != nil }) {
            let id = nextWaiter
            nextWaiter += 1
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        waiters[id] = (keys, continuation)
                    }
                }
            } onCancel: {
                Task { await self.cancelWaiter(id) }
            }
        }
        collected[recipient] = max(collected[recipient] ?? 0, round)
        var received = [Int: [[Float]]]()
        for key in keys { received[key.sender] = messages.removeValue(forKey: key) }
        return received
    }

    private func cancelWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(throwing: CancellationError())
    }
}

/// The exchange of agents in one process: messages go straight into the
/// shared mailbox.
public struct InMemoryExchange: AgentExchange {
    public let agent: Int
    public let mailbox: ExchangeMailbox

    public init(agent: Int, mailbox: ExchangeMailbox) {
        self.agent = agent
        self.mailbox = mailbox
    }

    public func exchange(round: Int, vectors: [[Float]], with neighbours: [Int]) async throws -> [Int: [[Float]]] {
        for j in neighbours { try await mailbox.deliver(round: round, from: agent, to: j, vectors: vectors) }
        return try await mailbox.collect(round: round, for: agent, from: neighbours)
    }
}
