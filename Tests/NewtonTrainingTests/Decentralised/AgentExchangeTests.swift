import XCTest

@testable import NewtonTraining

final class AgentExchangeTests: XCTestCase {
    func testMessagesWaitForTheirRecipientAndEarlyOnesAreKept() async throws {
        let mailbox = ExchangeMailbox()
        try await mailbox.deliver(round: 1, from: 2, to: 0, vectors: [[2]])
        let collecting = Task { try await mailbox.collect(round: 1, for: 0, from: [1, 2]) }
        try await Task.sleep(for: .milliseconds(50))
        try await mailbox.deliver(round: 1, from: 1, to: 0, vectors: [[1]])
        let received = try await collecting.value
        XCTAssertEqual(received, [1: [[1]], 2: [[2]]])
        // A neighbour already in the next round may send before the recipient asks.
        try await mailbox.deliver(round: 2, from: 1, to: 0, vectors: [[3]])
        let next = try await mailbox.collect(round: 2, for: 0, from: [1])
        XCTAssertEqual(next, [1: [[3]]])
    }

    func testStaleEarlyAndRepeatedMessagesAreRefused() async throws {
        let mailbox = ExchangeMailbox()
        try await mailbox.deliver(round: 1, from: 1, to: 0, vectors: [[1]])
        _ = try await mailbox.collect(round: 1, for: 0, from: [1])
        let cases: [(Int, String)] = [(1, "is stale"), (3, "too far ahead")]
        for (round, expected) in cases {
            do {
                try await mailbox.deliver(round: round, from: 1, to: 0, vectors: [[1]])
                XCTFail("round \(round) was accepted")
            } catch let error as TrainingError {
                XCTAssertEqual(error.code, .invalidExchange)
                XCTAssertTrue(error.message.contains(expected), error.message)
            }
        }
        try await mailbox.deliver(round: 2, from: 1, to: 0, vectors: [[1]])
        do {
            try await mailbox.deliver(round: 2, from: 1, to: 0, vectors: [[1]])
            XCTFail("a repeated message was accepted")
        } catch let error as TrainingError {
            XCTAssertTrue(error.message.contains("two messages for round 2"), error.message)
        }
    }

    func testAWaitingCollectEndsWhenItsTaskIsCancelled() async throws {
        let mailbox = ExchangeMailbox()
        let waiting = Task { try await mailbox.collect(round: 1, for: 0, from: [1]) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        do {
            _ = try await waiting.value
            XCTFail("a cancelled collect returned")
        } catch is CancellationError {}
    }
}
