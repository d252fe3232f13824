import NewtonCore
import NewtonTraining
import Synchronization
import XCTest

final class CheckpointTests: XCTestCase {
    /// Checkpoints collected from a run.
    private final class Saved: Sendable {
        private let stored = Mutex<[Checkpoint]>([])
        var all: [Checkpoint] { stored.withLock { $0 } }
        var policy: CheckpointPolicy { CheckpointPolicy(every: 2) { checkpoint in self.stored.withLock { $0.append(checkpoint) } } }
    }

    /// Every method, resumed from each of its checkpoints (read back from
    /// bytes, on a fresh cluster of another shape), continues exactly as the
    /// run that never stopped.
    func testResumedRunsContinueWithIdenticalObjectives() async throws {
        var hessianFree = HessianFreeOptions()
        hessianFree.gradientBatch = 200
        hessianFree.curvatureBatch = 150
        var firstOrder = FirstOrderOptions()
        firstOrder.batchSize = 50
        var progressive = NewtonOptions()
        progressive.gradientSampleFraction = 0.05
        // Decentralised runs (next, dgd) keep no checkpoints.
        let runs =
            OptimizerKind.allCases.filter { $0.decentralised == nil }.map { ($0, NewtonOptions()) } + [(.newton, progressive)]
        for (optimizer, newton) in runs {
            let saved = Saved()
            firstOrder.learningRate = optimizer == .sgd ? 0.1 : 0.01
            let full = try await Harness().run(
                optimizer, iterations: 6, newton: newton, hessianFree: hessianFree, firstOrder: firstOrder, checkpoints: saved.policy)
            XCTAssertEqual(saved.all.map(\.state.iteration), [0, 2, 4, 6], "\(optimizer)")
            for checkpoint in saved.all.dropLast() {
                let bytes = try checkpoint.encodedOptimizerState()
                let restored = try Checkpoint(weights: checkpoint.weights, optimizerState: bytes, source: "test")
                XCTAssertEqual(restored, checkpoint, "\(optimizer)")
                var other = Harness()
                other.servers = 2
                other.workers = 3
                let resumed = try await other.run(
                    optimizer, iterations: 6, newton: newton, hessianFree: hessianFree, firstOrder: firstOrder, resume: restored)
                XCTAssertEqual(
                    resumed.objectives, Array(full.objectives[(checkpoint.state.iteration + 1)...]),
                    "\(optimizer) resumed after iteration \(checkpoint.state.iteration)")
            }
        }
    }

    func testOptimizerVectorsAreCheckpointedPerMethod() async throws {
        let expected: [OptimizerKind: Set<VectorName>] = [
            .newton: [], .hessianFree: [.previousDirection], .sgd: [.momentum], .adam: [.adamFirstMoment, .adamSecondMoment],
        ]
        for (optimizer, names) in expected {
            let saved = Saved()
            _ = try await Harness().run(optimizer, iterations: 2, checkpoints: saved.policy)
            XCTAssertEqual(Set(saved.all.last!.optimizerVectors.keys), names, "\(optimizer)")
            XCTAssertEqual(saved.all.last!.state.iteration, 2)
        }
    }

    func testBadCheckpointsAreRefusedWithTheReason() async throws {
        let network = try Harness().network()
        let weights = DenseParameters(zeros: network)
        let state = Checkpoint.State(iteration: 3, elapsedSeconds: 1, initialGradientNorm: 2, lambda: 0.5)
        var wrongSize = Checkpoint(state: state, weights: weights)
        wrongSize.optimizerVectors[.momentum] = try DenseParameters(
            spec: NetworkSpec(layerSizes: [2, 2], activations: [], loss: .crossEntropy), values: [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try Checkpoint(weights: weights, optimizerState: wrongSize.encodedOptimizerState(), source: "store")) {
            XCTAssertTrue("\($0)".contains("vector 'momentum' has 6 values"), "\($0)")
        }
        XCTAssertThrowsError(try Checkpoint(weights: weights, optimizerState: [1, 2, 3], source: "store")) {
            XCTAssertTrue("\($0)".hasPrefix("store:"), "\($0)")
        }
        let model = try Safetensors.encode([], metadata: ["format": "something else"])
        XCTAssertThrowsError(try Checkpoint(weights: weights, optimizerState: model, source: "store")) {
            XCTAssertTrue("\($0)".contains("not a newtonps checkpoint"), "\($0)")
        }
        var other = Harness()
        other.layers = [8, 5, 3]
        do {
            _ = try await other.run(iterations: 1, resume: Checkpoint(state: state, weights: weights))
            XCTFail("a checkpoint of another network was accepted")
        } catch let error as TrainingError {
            XCTAssertEqual(error.code, .invalidCheckpoint)
        }
    }
}
