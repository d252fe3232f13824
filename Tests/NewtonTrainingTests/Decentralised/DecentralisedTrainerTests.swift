import NewtonCore
import NewtonRoles
import XCTest

@testable import NewtonTraining

/// NEXT and DGD on embedded agents over small synthetic data.
final class DecentralisedTrainerTests: XCTestCase {
    /// Four agents of 150 rows each, and 200 test rows.
    private let harness = Harness(trainRows: 600, testRows: 200, features: 8, classes: 3)

    private func run(
        _ optimizer: OptimizerKind, layers: [Int], loss: Loss = .crossEntropy, options: DecentralisedOptions, rounds: Int,
        regularization: Double = 1, newton: NewtonOptions = .init(), workersPerAgent: Int = 1
    ) async throws -> (summary: TrainingSummary, agents: EmbeddedAgents) {
        var harness = harness
        harness.layers = layers
        harness.loss = loss
        let network = try harness.network()
        let agents = try await EmbeddedAgents(
            grid: PartitionGrid(unpartitioned: network), data: try harness.descriptor.load(), descriptor: harness.descriptor,
            agents: options.agents, serversPerAgent: 1, workersPerAgent: workersPerAgent, monitorWorkers: 1, shardRows: 64)
        let job = TrainingJob(
            network: network, optimizer: optimizer, regularization: regularization, newton: newton, decentralised: options,
            budget: TrainingBudget(maxIterations: rounds), seed: 3)
        let summary = try await job.run(
            agents: agents.agents.map(\.coordinator), monitor: agents.monitor.coordinator, jobID: "test", data: harness.descriptor)
        return (summary, agents)
    }

    func testNextFollowsThePapersIterationWrittenOutInDoublePrecision() async throws {
        var options = DecentralisedOptions()
        options.agents = 4
        options.topology = .ring
        options.timeVarying = TimeVaryingGraph(activation: 0.5, window: 2)
        options.tau = 2
        let rounds = 8
        let data = try harness.descriptor.load().train
        for loss in [Loss.crossEntropy, .squared] {
            let (summary, _) = try await run(.next, layers: [8, 6, 3], loss: loss, options: options, rounds: rounds)
            var harness = harness
            harness.layers = [8, 6, 3]
            harness.loss = loss
            let network = try harness.network()
            let reference = try ReferenceNext(
                data: data, network: network, agents: 4, ridge: 1 / Double(data.rows), tau: 2,
                schedule: GraphSchedule(topology: .ring, agents: 4, timeVarying: options.timeVarying, seed: 3),
                initial: DenseParameters(heNormal: network, seed: 3))
            let expected = reference.run(rounds: rounds)
            XCTAssertEqual(summary.records.count, rounds + 1)
            XCTAssertLessThan(
                maxRelativeGap(summary.objectives, expected.objectives), 1e-5, "\(loss): \(summary.objectives) vs \(expected.objectives)")
            XCTAssertLessThan(
                maxRelativeGap(Array(summary.records.compactMap(\.disagreement).dropFirst()), Array(expected.disagreements.dropFirst())),
                1e-3, "\(loss)")
            XCTAssertEqual(summary.records[0].disagreement, 0)
            // z and y to each neighbour: 2 · |θ| · 4 bytes · degree, averaged over agents.
            let parameters = Double(DenseParameters(zeros: network).count)
            for (record, degrees) in zip(summary.records.dropFirst(), expected.meanDegrees) {
                XCTAssertEqual(record.bytesSent, 2 * parameters * 4 * degrees)
            }
        }
    }

    func testNextReachesTheCentralisedOptimumOfAConvexProblemWithBothSurrogates() async throws {
        // Multinomial logistic regression with C = 0.05 (condition number in
        // the tens): the centralised optimum from Newton to ‖∇f‖ at the
        // float32 floor.
        var harness = harness
        harness.layers = [8, 3]
        var secondOrder = SecondOrderOptions()
        secondOrder.cgTolerance = 1e-6
        var newton = NewtonOptions()
        newton.subsampleFraction = 1
        let cluster = try await harness.cluster()
        let centralised = try await TrainingJob(
            network: try harness.network(), optimizer: .newton, regularization: 0.05, secondOrder: secondOrder, newton: newton,
            budget: TrainingBudget(maxIterations: 30), seed: 3
        ).run(on: cluster.coordinator, jobID: "optimum", data: harness.descriptor)
        let optimum = centralised.records.last!
        let optimalWeights = try await cluster.coordinator.read(.weights).values
        XCTAssertLessThan(optimum.gradientNorm, 1e-5 * centralised.records[0].gradientNorm)

        for (surrogate, rounds) in [(Surrogate.gaussNewton, 200), (.linear, 400)] {
            var options = DecentralisedOptions()
            options.agents = 4
            options.topology = .ring
            options.surrogate = surrogate
            let (summary, agents) = try await run(
                .next, layers: [8, 3], options: options, rounds: rounds, regularization: 0.05, newton: newton)
            let last = summary.records.last!
            XCTAssertEqual(last.objective, optimum.objective, accuracy: 1e-5 * optimum.objective, "\(surrogate)")
            for agent in agents.agents {
                let w = try await agent.coordinator.read(.weights).values
                XCTAssertLessThan(relativeDistance(w, optimalWeights), 1e-3, "\(surrogate)")
            }
        }
    }

    func testL1GivesZerosAndGaussNewtonRefusesIt() async throws {
        var options = DecentralisedOptions()
        options.agents = 3
        options.topology = .complete
        options.regularizer = .l1
        options.l1Strength = 0.02
        let (summary, _) = try await run(.next, layers: [8, 3], options: options, rounds: 40)
        XCTAssertGreaterThan(summary.records.last!.zeroFraction!, 0.1)
        XCTAssertLessThan(summary.records.last!.objective, summary.records[0].objective)
        let dgd = try await run(.dgd, layers: [8, 3], options: options, rounds: 10).summary
        XCTAssertGreaterThan(dgd.records.last!.zeroFraction!, 0)

        options.surrogate = .gaussNewton
        do {
            _ = try await run(.next, layers: [8, 3], options: options, rounds: 1)
            XCTFail("gauss-newton with l1 must be refused")
        } catch let error as TrainingError {
            XCTAssertEqual(error.code, .invalidOptions)
            XCTAssertTrue(error.message.contains("use the linear surrogate with l1"), error.message)
        }
    }

    func testRunsRepeatFromTheSeedWhateverTheWorkersPerAgent() async throws {
        var options = DecentralisedOptions()
        options.agents = 3
        options.topology = .erdosRenyi(0.5)
        options.surrogate = .gaussNewton
        let one = try await run(.next, layers: [8, 5, 3], options: options, rounds: 4).summary
        let two = try await run(.next, layers: [8, 5, 3], options: options, rounds: 4, workersPerAgent: 2).summary
        XCTAssertEqual(one.objectives, two.objectives)
        XCTAssertEqual(one.records.map(\.disagreement), two.records.map(\.disagreement))
        XCTAssertGreaterThan(one.records.last!.cgIterations, 0)
        let dgd = try await run(.dgd, layers: [8, 5, 3], options: options, rounds: 4).summary
        XCTAssertLessThan(dgd.records.last!.objective, dgd.records[0].objective)
    }
}

private func relativeDistance(_ a: [Float], _ b: [Float]) -> Double {
    let difference = zip(a, b).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }
    return (difference / b.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
}

/// NEXT with the linear surrogate and r = (ρ/2)‖w‖², written as the paper
/// states it, in double precision over plain arrays, each agent's gradient
/// from `RowKernels` on its contiguous share of the rows.
private struct ReferenceNext {
    let data: Dataset
    let network: NetworkSpec
    let agents: Int
    let ridge: Double
    let tau: Double
    let schedule: GraphSchedule
    let initial: DenseParameters

    private func share(_ i: Int) -> Dataset {
        data.subset(data.rows * i / agents..<data.rows * (i + 1) / agents)
    }

    /// (1/l)·Σ ξ over `rows` and its gradient at `w`.
    private func lossAndGradient(_ w: [Double], rows: Dataset) throws -> (Double, [Double]) {
        let kernels = RowKernels(parameters: try DenseParameters(spec: network, values: w.map { Float($0) }))
        let (loss, gradient) = kernels.lossAndGradient(kernels.forward(inputs: rows.features, rows: rows.rows), labels: rows.labels)
        let l = Double(data.rows)
        return (loss / l, gradient.values.map { Double($0) / l })
    }

    /// U(w̄), the disagreement and the graph's mean degree of every round.
    func run(rounds: Int) -> (objectives: [Double], disagreements: [Double], meanDegrees: [Double]) {
        let shares = (0..<agents).map(share)
        var w = Array(repeating: initial.values.map { Double($0) }, count: agents)
        var gradients = shares.map { try! lossAndGradient(w[0], rows: $0).1 }
        var y = gradients
        var pi = gradients.map { g in g.map { Double(agents - 1) * $0 } }
        var alpha = 0.1
        var objectives = [measure(w).0]
        var disagreements = [measure(w).1]
        var degrees = [Double]()
        for round in 1...rounds {
            alpha *= 1 - 0.01 * alpha
            let graph = schedule.graph(round: round)
            let c = graph.metropolisWeights
            degrees.append(Double((0..<agents).reduce(0) { $0 + graph.degree($1) }) / Double(agents))
            let z = (0..<agents).map { i in
                (0..<w[i].count).map { k in
                    let best = (tau * w[i][k] - gradients[i][k] - pi[i][k]) / (tau + ridge)
                    return w[i][k] + alpha * (best - w[i][k])
                }
            }
            let mixedZ = c.map { row in (0..<z[0].count).map { k in row.reduce(0) { $0 + $1.weight * z[$1.agent][k] } } }
            let mixedY = c.map { row in (0..<y[0].count).map { k in row.reduce(0) { $0 + $1.weight * y[$1.agent][k] } } }
            for i in 0..<agents {
                w[i] = mixedZ[i]
                let new = try! lossAndGradient(w[i], rows: shares[i]).1
                y[i] = (0..<new.count).map { mixedY[i][$0] + new[$0] - gradients[i][$0] }
                pi[i] = (0..<new.count).map { Double(agents) * y[i][$0] - new[$0] }
                gradients[i] = new
            }
            let (u, d) = measure(w)
            objectives.append(u)
            disagreements.append(d)
        }
        return (objectives, disagreements, degrees)
    }

    /// U(w̄) and (1/I)Σ‖wᵢ − w̄‖².
    private func measure(_ w: [[Double]]) -> (Double, Double) {
        let mean = (0..<w[0].count).map { k in w.reduce(0) { $0 + $1[k] } / Double(agents) }
        let rounded = mean.map { Double(Float($0)) }
        let loss = try! lossAndGradient(rounded, rows: data).0
        let disagreement = w.reduce(0.0) { total, wi in total + zip(wi, mean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        return (loss + 0.5 * ridge * rounded.reduce(0) { $0 + $1 * $1 }, disagreement / Double(agents))
    }
}
