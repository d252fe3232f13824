import NewtonTraining
import XCTest

final class FirstOrderTests: XCTestCase {
    func testSGDAndAdamDescendAndAreReproducible() async throws {
        for method in [OptimizerKind.sgd, .adam] {
            var options = FirstOrderOptions()
            options.learningRate = method == .sgd ? 0.1 : 0.01
            options.batchSize = 50
            let a = try await Harness().run(method, iterations: 15, firstOrder: options)
            var h = Harness()
            h.workers = 3
            let b = try await h.run(method, iterations: 15, firstOrder: options)
            XCTAssertLessThan(a.objectives.last!, a.objectives.first! * 0.7, "\(method)")
            XCTAssertEqual(a.objectives, b.objectives, "\(method): 1 vs 3 workers")
            XCTAssertGreaterThan(a.records.last!.testAccuracy!, 0.7, "\(method)")
        }
    }

    func testBadLearningRateIsRejected() {
        var options = FirstOrderOptions()
        options.learningRate = -1
        options.batchSize = 0
        XCTAssertEqual(options.problems.count, 2)
    }
}
