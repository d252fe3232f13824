import Foundation
import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

/// Checks `NewtonCG` against an independent float64 NumPy implementation of
/// the same method, `Fixtures/newton_cg_reference.py`, through the records it
/// wrote to `Fixtures/newton_cg_reference.json`: same data, same initial
/// weights, same options, and S = every row, so nothing is random.
///
/// The decisions (CG iterations, λ, α, line-search tries) must match exactly;
/// the script only writes runs whose decisions stay clear of their thresholds
/// and that its own float32 replay reproduces. Objectives and gradient norms
/// differ by float32 rounding only: that replay drifts by about 1e-7 (printed
/// by the script), so 1e-5 leaves a wide margin, while a change of method —
/// the scaling of C, the subsample average, the ρ model — moves them far more.
final class ReferenceFixtureTests: XCTestCase {
    /// Largest relative gap between objectives.
    static let objectiveTolerance = 1e-5
    /// Largest gap between gradient norms, relative to the initial norm: near
    /// the optimum ‖∇f‖ is a small sum of terms of size ‖∇f₀‖, so its rounding
    /// error scales with ‖∇f₀‖, not with itself.
    static let gradientNormTolerance = 1e-5

    func testNewtonCGMatchesNumPyReference() async throws {
        let fixture = try ReferenceFixture.load()
        XCTAssertFalse(fixture.configurations.isEmpty, "\(ReferenceFixture.path) has no configurations")
        for configuration in fixture.configurations {
            for products in ProductsMode.allCases {
                try await check(configuration, of: fixture, products: products)
            }
        }
    }

    /// Runs one configuration on a one-server, one-worker embedded cluster and
    /// compares its records with the reference's, stopping at the first
    /// iteration whose decisions differ (the runs part ways there).
    private func check(_ configuration: ReferenceFixture.Configuration, of fixture: ReferenceFixture, products: ProductsMode) async throws {
        let label = "\(configuration.name) (\(products.rawValue) products)"
        guard let activation = Activation(rawValue: configuration.activation), let loss = Loss(rawValue: configuration.loss) else {
            throw FixtureError("\(label): unknown activation \(configuration.activation) or loss \(configuration.loss)")
        }
        let spec = try NetworkSpec(layerSizes: configuration.layers, activations: [activation], loss: loss)
        let train = try Dataset(
            features: try exactFloats(fixture.features, "features"), labels: fixture.labels.map { Int32($0) },
            columns: fixture.columns, classNames: (0..<fixture.classes).map { String($0) })
        let data = TrainingData(train: train, test: nil, scaler: try FeatureScaler.fit(.none, on: train))
        // Only a key: the cluster registers `data` under it, so no worker loads
        // anything; the path does not exist, so a missed lookup fails instead
        // of reading other data.
        let descriptor = DataDescriptor(
            source: .files(format: .csv, train: "/nonexistent/newton-cg-reference.csv", test: nil, csvLabelColumn: 0, csvHeader: nil),
            scaling: .none)
        let cluster = try await EmbeddedCluster(
            grid: PartitionGrid(unpartitioned: spec), data: data, descriptor: descriptor, servers: 1, workers: 1, shardRows: 16)
        let weights = try DenseParameters(
            spec: spec, values: try exactFloats(configuration.initialWeights, "\(configuration.name) weights"))
        try await cluster.coordinator.start(jobID: "reference-\(configuration.name)", data: descriptor, weights: weights)

        var options = NewtonOptions()
        options.subsampleFraction = fixture.options.subsampleFraction
        options.products = products
        let shared = SecondOrderOptions()
        assertDefaults(shared, match: fixture.options)
        let objective = try Objective(cluster: cluster.coordinator, regularization: configuration.regularization)
        let summary = try await NewtonCG(options: options, secondOrder: shared, seed: 1, objective: objective)
            .train(budget: TrainingBudget(maxIterations: configuration.records.count - 1))

        XCTAssertEqual(summary.stopReason, .iterationLimit, label)
        XCTAssertEqual(summary.records.count, configuration.records.count, "\(label): number of records")
        let initialNorm = configuration.records[0].gradNorm
        for (swift, reference) in zip(summary.records, configuration.records) {
            let at = "\(label), iteration \(reference.iteration)"
            XCTAssertEqual(swift.iteration, reference.iteration, at)
            let outcome: IterationRecord.Outcome = reference.iteration == 0 ? .start : reference.step > 0 ? .accepted : .lineSearchFailed
            XCTAssertEqual(swift.outcome, outcome, at)
            XCTAssertLessThanOrEqual(
                abs(swift.objective - reference.objective) / abs(reference.objective), Self.objectiveTolerance,
                "\(at): objective \(swift.objective), reference \(reference.objective)")
            XCTAssertLessThanOrEqual(
                abs(swift.gradientNorm - reference.gradNorm) / initialNorm, Self.gradientNormTolerance,
                "\(at): ‖∇f‖ \(swift.gradientNorm), reference \(reference.gradNorm)")
            let decisions = (swift.cgIterations, swift.lambda, swift.step, swift.lineSearchSteps)
            let expected = (reference.cgIterations, reference.lambda, reference.step, reference.lineSearchSteps)
            guard decisions == expected else {
                XCTFail(
                    "\(at): (CG iterations, λ, α, line-search tries) are \(decisions), reference \(expected); later iterations not compared"
                )
                return
            }
        }
    }

    /// The reference ran with the authors' defaults; Swift must still have them.
    private func assertDefaults(_ options: SecondOrderOptions, match reference: ReferenceFixture.Options) {
        let knobs: [(String, Double, Double)] = [
            ("CG tolerance", options.cgTolerance, reference.cgTolerance),
            ("CG max iterations", Double(options.cgMaxIterations), Double(reference.cgMaxIterations)),
            ("initial λ", options.step.initialLambda, reference.initialLambda),
            ("λ increase", options.step.lambdaIncrease, reference.lambdaIncrease),
            ("λ decrease", options.step.lambdaDecrease, reference.lambdaDecrease),
            ("low ratio", options.step.lowRatio, reference.lowRatio),
            ("high ratio", options.step.highRatio, reference.highRatio),
            ("Armijo η", options.step.armijo, reference.armijo),
            ("max line-search steps", Double(options.step.maxLineSearchSteps), Double(reference.maxLineSearchSteps)),
        ]
        for (knob, swift, python) in knobs {
            XCTAssertEqual(swift, python, "\(knob): the Swift default is \(swift), the reference used \(python)")
        }
    }

    /// `values` as Float, which they must be exactly (the script rounds them).
    private func exactFloats(_ values: [Double], _ what: String) throws -> [Float] {
        let floats = values.map { Float($0) }
        if let bad = values.indices.first(where: { Double(floats[$0]) != values[$0] }) {
            throw FixtureError("\(what)[\(bad)] = \(values[bad]) in \(ReferenceFixture.path) is not a float32 value")
        }
        return floats
    }
}

/// The JSON written by `Fixtures/newton_cg_reference.py` (snake_case keys).
private struct ReferenceFixture: Decodable {
    struct Options: Decodable {
        var subsampleFraction: Double
        var cgTolerance: Double
        var cgMaxIterations: Int
        var initialLambda: Double
        var lambdaIncrease: Double
        var lambdaDecrease: Double
        var lowRatio: Double
        var highRatio: Double
        var armijo: Double
        var maxLineSearchSteps: Int
    }

    struct Record: Decodable {
        var iteration: Int
        var objective: Double
        var lambda: Double
        var cgIterations: Int
        var step: Double
        var lineSearchSteps: Int
        var gradNorm: Double
    }

    struct Configuration: Decodable {
        var name: String
        var layers: [Int]
        var activation: String
        var loss: String
        /// C, before scaling by the number of rows.
        var regularization: Double
        var initialWeights: [Double]
        /// Iteration 0 (the start) first.
        var records: [Record]

        enum CodingKeys: String, CodingKey {
            case name, layers, activation, loss, initialWeights, records
            case regularization = "C"
        }
    }

    var rows: Int
    var columns: Int
    var classes: Int
    /// Row-major, `rows × columns`.
    var features: [Double]
    var labels: [Int]
    var options: Options
    var configurations: [Configuration]

    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/newton_cg_reference.json").path
    static let regenerate = "regenerate it with `python3 Tests/NewtonTrainingTests/Fixtures/newton_cg_reference.py`"

    static func load() throws -> ReferenceFixture {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw FixtureError("cannot read the reference fixture \(path); \(regenerate)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let fixture: ReferenceFixture
        do { fixture = try decoder.decode(ReferenceFixture.self, from: bytes) } catch {
            throw FixtureError("malformed reference fixture \(path) (\(error)); \(regenerate)")
        }
        guard fixture.features.count == fixture.rows * fixture.columns, fixture.labels.count == fixture.rows,
            fixture.configurations.allSatisfy({ $0.records.first?.iteration == 0 })
        else {
            throw FixtureError("inconsistent reference fixture \(path): shapes or records do not fit; \(regenerate)")
        }
        return fixture
    }
}

/// A missing, malformed or inconsistent fixture, said plainly.
private struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
