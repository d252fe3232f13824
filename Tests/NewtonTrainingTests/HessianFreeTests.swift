import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

final class HessianFreeTests: XCTestCase {
    /// Two classes split by the sign of the first feature, exactly balanced:
    /// at θ = 0 a tanh network sits on a saddle. Every gradient is exactly
    /// zero (tanh(0) = 0 and the outputs are ½, ½), so Gauss-Newton's
    /// direction is zero; the Hessian's coupling of the two layers is
    /// indefinite, and only a negative-curvature direction leaves.
    private func saddle(
        _ solver: CurvatureSolver, step: NegativeCurvatureStep = .separate, diagnostics: Bool = false
    ) async throws -> [IterationRecord] {
        var features = [Float]()
        var labels = [Int32]()
        var rng = SeededGenerator(seed: 5)
        for i in 0..<200 {
            let label = Int32(i % 2)
            let x0 = Float(abs(rng.nextGaussian()) + 0.5) * (label == 1 ? 1 : -1)
            features += [x0, Float(rng.nextGaussian())]
            labels.append(label)
        }
        let data = TrainingData(
            train: try Dataset(features: features, labels: labels, columns: 2, classNames: ["0", "1"]),
            test: nil,
            scaler: try FeatureScaler.fit(.none, on: try Dataset(features: features, labels: labels, columns: 2, classNames: ["0", "1"])))
        let descriptor = DataDescriptor(source: .synthetic(trainRows: 200, testRows: 0, features: 2, classes: 2, seed: 999), scaling: .none)
        let network = try NetworkSpec(layerSizes: [2, 4, 2], activations: [.tanh], loss: .crossEntropy)
        let cluster = try await EmbeddedCluster(
            grid: PartitionGrid(unpartitioned: network), data: data, descriptor: descriptor,
            servers: 1, workers: 1, shardRows: 50
        ).coordinator
        try await cluster.start(jobID: "saddle", data: descriptor, weights: DenseParameters(zeros: network))
        var options = HessianFreeOptions()
        options.solver = solver
        options.curvatureBatch = 200
        options.negativeCurvatureStep = step
        options.diagnostics = diagnostics
        var shared = SecondOrderOptions()
        shared.step.initialLambda = 1e-3
        let hf = try HessianFree(
            options: options, secondOrder: shared, seed: 1, objective: try Objective(cluster: cluster, regularization: 100))
        return try await hf.train(budget: TrainingBudget(maxIterations: 6)).records
    }

    func testNegativeCurvatureLeavesASaddleWhereGaussNewtonStalls() async throws {
        let gaussNewton = try await saddle(.gaussNewtonCG).map(\.objective)
        XCTAssertEqual(gaussNewton.first!, log(2), accuracy: 1e-6, "the start is the saddle value log 2")
        XCTAssertEqual(gaussNewton.last!, gaussNewton.first!, "Gauss-Newton CG should stall at the saddle: \(gaussNewton)")
        for step in NegativeCurvatureStep.allCases {
            let negativeCurvature = try await saddle(.hessianCG, step: step).map(\.objective)
            XCTAssertLessThan(negativeCurvature.last!, 0.5, "\(step): negative curvature should leave the saddle: \(negativeCurvature)")
        }
    }

    /// At the saddle the Newton part is zero, so all of the first step's
    /// decrease is the negative curvature's, whichever way it is taken; and
    /// measuring the combined step's share does not change its path.
    func testNegativeShareIsAllOfTheDecreaseAtASaddleAndMeasuringItDoesNotSteer() async throws {
        let separate = try await saddle(.hessianCG, step: .separate)
        let combined = try await saddle(.hessianCG, step: .combined)
        let measured = try await saddle(.hessianCG, step: .combined, diagnostics: true)
        XCTAssertEqual(measured.map(\.objective), combined.map(\.objective))
        XCTAssertNil(combined[1].curvatureStep?.negativeShare, "the combined step measures its share only when asked")
        for records in [separate, measured] {
            let first = try XCTUnwrap(records[1].curvatureStep)
            XCTAssertEqual(records[1].outcome, .negativeCurvature)
            XCTAssertEqual(first.newtonNorm, 0)
            XCTAssertLessThan(try XCTUnwrap(first.curvature), 0)
            XCTAssertEqual(try XCTUnwrap(first.negativeShare), 1, accuracy: 1e-12)
            XCTAssertGreaterThan(try XCTUnwrap(first.negativeStepTaken), 0)
            XCTAssertGreaterThan(try XCTUnwrap(first.negativeStepTried), 0)
        }
        // Separately searched, ŝ only ever adds to what x bought.
        for record in separate.dropFirst() where record.outcome == .negativeCurvature {
            let share = try XCTUnwrap(record.curvatureStep?.negativeShare, "iteration \(record.iteration)")
            XCTAssert(share > 0 && share <= 1, "iteration \(record.iteration): share \(share)")
        }
    }

    func testHessianFreeTrainsAndIsIdenticalForOneAndFourWorkers() async throws {
        for solver in CurvatureSolver.allCases {
            var options = HessianFreeOptions()
            options.solver = solver
            options.curvatureBatch = 200
            options.gradientBatch = 300
            var one = Harness()
            one.partitions = [2, 2, 2, 1]
            var four = one
            four.workers = 4
            four.servers = 2
            for preconditioned in solver == .bicgstab ? [false] : [false, true] {
                options.diagonalPreconditioner = preconditioned
                let a = try await one.run(.hessianFree, iterations: 6, hessianFree: options)
                let b = try await four.run(.hessianFree, iterations: 6, hessianFree: options)
                XCTAssertEqual(a.objectives, b.objectives, "\(solver), preconditioned \(preconditioned)")
                XCTAssertLessThan(
                    a.objectives.last!, a.objectives.first! * 0.9, "\(solver), preconditioned \(preconditioned): \(a.objectives)")
            }
        }
    }
}
