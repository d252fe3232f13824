import NewtonCore
import NewtonRoles
import XCTest

@testable import NewtonTraining

final class StepControlTests: XCTestCase {
    /// The gradient the line search computes with its first trial is, bit for
    /// bit, what a separate pass at the accepted point gives; a search that
    /// has to halve α computes none.
    func testFirstTrialGradientIsTheSeparatePassBitForBit() async throws {
        let h = Harness()
        let coordinator = try await h.cluster().coordinator
        try await coordinator.start(jobID: "search", data: h.descriptor, weights: DenseParameters(heNormal: try h.network(), seed: 3))
        let objective = try Objective(cluster: coordinator, regularization: 1)
        let (f, _) = try await objective.valueAndGradient(at: .weights, into: .gradient)
        // A short step along −∇f is taken at α = 1; a very long one only after halvings.
        for (scale, halves) in [(0.1, false), (1000.0, true)] {
            try await coordinator.run([.combine(target: .direction, terms: [VectorTerm(-scale, .gradient)])])
            let slope = try await coordinator.run([.dot(.gradient, .direction)])[0]
            let search = try await StepControl().search(objective, from: f, slope: slope, firstTrialGradient: .trialGradient)
            let value = try XCTUnwrap(search.value, "step \(scale)")
            XCTAssertEqual(search.steps > 1, halves, "step \(scale) took \(search.steps) tries")
            guard !halves else {
                XCTAssertNil(search.gradientNorm)
                continue
            }
            let separate = try await objective.valueAndGradient(at: .trial, into: .product)
            XCTAssertEqual(value, separate.value)
            XCTAssertEqual(search.gradientNorm, separate.gradientNorm)
            let pipelined = try await coordinator.read(.trialGradient).values
            let recomputed = try await coordinator.read(.product).values
            XCTAssertEqual(pipelined, recomputed)
        }
    }
}
