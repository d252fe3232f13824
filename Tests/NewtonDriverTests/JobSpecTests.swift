import Foundation
import NewtonCore
import NewtonDriver
import NewtonTraining
import XCTest

final class JobSpecTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobspec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in ["train.svm", "test.svm"] {
            try "1 1:0.5 2:0.25\n0 1:0.1\n".write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8)
        }
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(atPath: directory)
    }

    /// The problems of an invalid spec, one per line after the heading.
    private func problems(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            _ = try JobSpec.parse(yaml: yaml)
            XCTFail("the spec parsed", file: file, line: line)
            return []
        } catch let error as DriverError {
            XCTAssertEqual(error.code, .invalidJob, file: file, line: line)
            return Array(error.message.split(separator: "\n").dropFirst().map(String.init))
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return []
        }
    }

    private var fullSpec: String {
        """
        name: "nightly: fashion #3"
        train: \(directory)/train.svm
        test: \(directory)/test.svm
        format: libsvm
        label_column: 2
        csv_header: true
        scaling: unit
        layers: 2,16,8,2
        activation: [tanh, relu]
        loss: squared
        optimizer: sgd
        C: 0.5
        subsample: 0.1
        gradient_sample: 0.2
        gradient_sample_growth: 1.5
        cg_tolerance: 0.2
        cg_max_iterations: 40
        lambda: 3
        lambda_increase: 2
        lambda_decrease: 0.5
        armijo: 0.001
        line_search_steps: 7
        line_search_failures: 2
        products: jacobian
        block_diagonal: true
        straggler_cutoff: 0.75
        learning_rate: 0.05
        momentum: 0.5
        batch_size: 64
        adam_beta1: 0.8
        adam_beta2: 0.99
        adam_epsilon: 1e-6
        partitions: [1, 2, 2, 1]
        servers: 3
        workers: 4
        shard_rows: 250
        max_iterations: 12
        time_limit: 90.5
        gradient_tolerance: 0.001
        seed: 42
        """
    }

    func testHessianFreeKnobsAndTheSharedOnes() throws {
        let spec = try JobSpec.parse(
            yaml: """
                synthetic: {train_rows: 100, test_rows: 0, features: 4, classes: 2, seed: 1}
                optimizer: hf
                solver: bicgstab
                gradient_batch: 1024
                curvature_batch: 512
                warm_start: 0.5
                backtracking: false
                relative_progress: false
                negative_curvature_tolerance: 0.001
                negative_curvature_step: combined
                curvature_diagnostics: true
                cg_tolerance: 0.2
                lambda: 3
                C: 0.5
                """)
        var expected = HessianFreeOptions()
        expected.solver = .bicgstab
        expected.gradientBatch = 1024
        expected.curvatureBatch = 512
        expected.warmStart = 0.5
        expected.iterateBacktracking = false
        expected.relativeProgressStop = false
        expected.negativeCurvatureTolerance = 0.001
        expected.negativeCurvatureStep = .combined
        expected.diagnostics = true
        var shared = SecondOrderOptions()
        shared.cgTolerance = 0.2
        shared.step.initialLambda = 3
        XCTAssertEqual(spec.optimizer, .hessianFree)
        XCTAssertEqual(spec.hessianFree, expected)
        XCTAssertEqual(spec.secondOrder, shared)
        XCTAssertEqual(spec.regularization, 0.5)
        // The gradient batch is SGD/Adam's batch too.
        XCTAssertEqual(spec.firstOrder.batchSize, 1024)
        XCTAssertEqual(try JobSpec.parse(yaml: spec.yaml), spec)
    }

    func testFullSpecParsesEveryKnob() throws {
        let spec = try JobSpec.parse(yaml: fullSpec)
        XCTAssertEqual(spec.name, "nightly: fashion #3")
        XCTAssertEqual(
            spec.data,
            DataDescriptor(
                source: .files(
                    format: .libsvm, train: "\(directory)/train.svm", test: "\(directory)/test.svm", csvLabelColumn: 2, csvHeader: true),
                scaling: .unitRange))
        XCTAssertEqual(spec.layers, [2, 16, 8, 2])
        XCTAssertEqual(spec.activations, [.tanh, .relu])
        XCTAssertEqual(spec.loss, .squared)
        XCTAssertEqual(spec.optimizer, .sgd)

        XCTAssertEqual(spec.regularization, 0.5)
        var shared = SecondOrderOptions()
        shared.cgTolerance = 0.2
        shared.cgMaxIterations = 40
        shared.step.initialLambda = 3
        shared.step.lambdaIncrease = 2
        shared.step.lambdaDecrease = 0.5
        shared.step.armijo = 0.001
        shared.step.maxLineSearchSteps = 7
        shared.step.maxLineSearchFailures = 2
        XCTAssertEqual(spec.secondOrder, shared)
        var newton = NewtonOptions()
        newton.subsampleFraction = 0.1
        newton.gradientSampleFraction = 0.2
        newton.gradientSampleGrowth = 1.5
        newton.products = .jacobian
        newton.blockDiagonal = true
        newton.stragglerCutoff = 0.75
        XCTAssertEqual(spec.newton, newton)

        var firstOrder = FirstOrderOptions()
        firstOrder.learningRate = 0.05
        firstOrder.momentum = 0.5
        firstOrder.batchSize = 64
        firstOrder.beta1 = 0.8
        firstOrder.beta2 = 0.99
        firstOrder.epsilon = 1e-6
        XCTAssertEqual(spec.firstOrder, firstOrder)

        XCTAssertEqual(spec.partitions, [1, 2, 2, 1])
        XCTAssertEqual(spec.servers, 3)
        XCTAssertEqual(spec.workers, 4)
        XCTAssertEqual(spec.shardRows, 250)
        XCTAssertEqual(spec.budget.maxIterations, 12)
        XCTAssertEqual(spec.budget.timeLimit, 90.5)
        XCTAssertEqual(spec.budget.gradientTolerance, 0.001)
        XCTAssertEqual(spec.seed, 42)

        let network = try NetworkSpec(layerSizes: [2, 16, 8, 2], activations: [.tanh, .relu], loss: .squared)
        let job = spec.trainingJob(network: network)
        XCTAssertEqual(job.network, network)
        XCTAssertEqual(job.optimizer, .sgd)
        XCTAssertEqual(job.regularization, 0.5)
        XCTAssertEqual(job.secondOrder, shared)
        XCTAssertEqual(job.newton, newton)
        XCTAssertEqual(job.firstOrder, firstOrder)
        XCTAssertEqual(job.seed, 42)
        XCTAssertEqual(job.budget.maxIterations, 12)
    }

    /// The authors' defaults (simpleNN); `CommandLineTests` checks that
    /// `train` with no flags builds this same spec.
    func testDefaults() throws {
        let spec = try JobSpec.parse(yaml: "synthetic: {features: 5}\n")
        XCTAssertEqual(
            spec.data,
            DataDescriptor(
                source: .synthetic(trainRows: 2000, testRows: 0, features: 5, classes: 4, seed: 1), scaling: .standardize))
        XCTAssertNil(spec.layers)
        XCTAssertEqual(spec.activations, [.relu])
        XCTAssertEqual(spec.loss, .crossEntropy)
        XCTAssertEqual(spec.optimizer, .newton)
        XCTAssertEqual(spec.regularization, 0.01)
        XCTAssertEqual(spec.secondOrder.cgTolerance, 0.1)
        XCTAssertEqual(spec.secondOrder.cgMaxIterations, 250)
        XCTAssertEqual(spec.secondOrder.step.initialLambda, 1)
        XCTAssertEqual(spec.secondOrder.step.lambdaIncrease, 1.5)
        XCTAssertEqual(spec.secondOrder.step.lambdaDecrease, 2.0 / 3.0)
        XCTAssertEqual(spec.secondOrder.step.armijo, 1e-4)
        XCTAssertEqual(spec.newton.subsampleFraction, 0.05)
        XCTAssertEqual(spec.newton.products, .jacobian)
        XCTAssertEqual(spec.hessianFree.solver, .hessianCG)
        XCTAssertNil(spec.hessianFree.gradientBatch)
        XCTAssertEqual(spec.firstOrder.batchSize, 128)
        XCTAssertEqual(spec.firstOrder.learningRate, 0.01)
        XCTAssertNil(spec.partitions)
        XCTAssertNil(spec.servers)
        XCTAssertNil(spec.workers)
        XCTAssertEqual(spec.shardRows, 1000)
        XCTAssertEqual(spec.budget.maxIterations, 100)
        XCTAssertNil(spec.budget.timeLimit)
        XCTAssertEqual(spec.budget.gradientTolerance, 0)
        XCTAssertEqual(spec.seed, 1)
        XCTAssertNil(spec.name)

        XCTAssertEqual(try JobSpec.parse(yaml: "synthetic: {}\noptimizer: adam\n").firstOrder.learningRate, 0.001)
        // A null value counts as not given.
        XCTAssertEqual(try JobSpec.parse(yaml: "synthetic: {}\nlayers: null\ntime_limit: ~\nname:\n").layers, nil)
    }

    func testBadSpecReportsEveryProblemAtItsKey() {
        let lines = problems(
            """
            train: \(directory)/missing.svm
            format: libsvm
            layers: [784, 300, 300, 10]
            lamda: 2
            cg_tolerance: 3
            optimizer: lbfgs
            partitions: [2, 2]
            """)
        XCTAssertEqual(lines.count, 5, lines.joined(separator: "\n"))
        func line(_ key: String) -> String? { lines.first { $0.contains(key) } }
        XCTAssertEqual(line("lamda"), "lamda (line 4): unknown key; did you mean lambda?")
        XCTAssertEqual(line("cg_tolerance"), "cg_tolerance (line 5): CG tolerance must be in (0, 1), got 3.0")
        XCTAssertEqual(line("optimizer"), "optimizer (line 6): expected one of newton, hf, sgd, adam, next, dgd, got 'lbfgs'")
        XCTAssertEqual(line("train (line 1)"), "train (line 1): \(directory)/missing.svm does not exist")
        let grid = try? XCTUnwrap(line("partitions"))
        XCTAssertTrue(
            grid?.hasPrefix("layers (line 3), partitions (line 7): partitions [2, 2] give 2 layers of groups") ?? false, grid ?? "")
    }

    func testTypeAndRangeProblems() {
        let lines = problems(
            """
            synthetic: {train_rows: 0, classes: many, colour: red}
            layers: [5, abc]
            block_diagonal: maybe
            activation: linear
            servers: 0
            products: rop
            """)
        XCTAssertEqual(
            lines,
            [
                "synthetic.colour (line 1): unknown key",
                "synthetic.classes (line 1): expected an integer, got 'many'",
                "layers (line 2): expected an integer, got 'abc'",
                "block_diagonal (line 3): expected true or false, got 'maybe'",
                "activation (line 4): expected one of sigmoid, tanh, relu, got 'linear'",
                "servers (line 5): servers must be at least 1 (leave it out for all), got 0",
                "synthetic (line 1): synthetic train_rows must be at least 1, got 0",
            ])
        // A problem of two keys together names both.
        XCTAssertEqual(
            problems("synthetic: {}\nproducts: rop\nblock_diagonal: true\n"),
            [
                "products (line 2), block_diagonal (line 3): block-diagonal mode needs the jacobian products mode (blocks solve from their cached slices)"
            ])
    }

    func testDataProblems() throws {
        // No data keys: the default training data, Fashion-MNIST from Debian's package.
        if FileManager.default.fileExists(atPath: JobSpec.defaultTrain) {
            XCTAssertEqual(
                try JobSpec.parse(yaml: "seed: 3\n").data.source,
                .files(format: .idx, train: JobSpec.defaultTrain, test: JobSpec.defaultTrain, csvLabelColumn: 0, csvHeader: nil))
        }
        XCTAssertEqual(
            problems("synthetic: {}\ntrain: \(directory)/train.svm\nformat: libsvm\n"),
            [
                "train (line 2): describes data files, but synthetic (line 1) gives synthetic data; give one or the other",
                "format (line 3): describes data files, but synthetic (line 1) gives synthetic data; give one or the other",
            ])
        XCTAssertEqual(
            problems("train: \(directory)/train.svm\ntest: \(directory)/test.svm\nformat: libsvm\nno_test: true\n"),
            [
                "test (line 2): a test set is given but no_test (line 4) says there is none"
            ])
        XCTAssertEqual(
            problems("train: \(directory)\nformat: csv\n"),
            [
                "train (line 1): \(directory) is a directory, but csv data is one file"
            ])
    }

    /// With a data root, paths are taken from it and may not leave it; the
    /// spec keeps the path as written (each process locates it in its own root).
    func testDataPathsUnderADataRoot() throws {
        let root = try DataRoot(directory)
        let spec = try JobSpec.parse(yaml: "train: train.svm\ntest: test.svm\nformat: libsvm\n", dataRoot: root)
        XCTAssertEqual(
            spec.data.source, .files(format: .libsvm, train: "train.svm", test: "test.svm", csvLabelColumn: 0, csvHeader: nil))
        do {
            _ = try JobSpec.parse(yaml: "train: /etc/passwd\ntest: ../x.svm\nformat: csv\n", dataRoot: root)
            XCTFail("paths outside the data root were accepted")
        } catch let error as DriverError {
            XCTAssertEqual(
                Array(error.message.split(separator: "\n").dropFirst()),
                [
                    "train (line 1): data path '/etc/passwd' is outside the data root \(root.path)",
                    "test (line 2): data path '../x.svm' is outside the data root \(root.path)",
                ])
        }
    }

    func testIDXDirectoryHoldsTheTestSplitUnlessNoTest() throws {
        for prefix in ["train", "t10k"] {
            for kind in ["images-idx3", "labels-idx1"] {
                XCTAssertTrue(FileManager.default.createFile(atPath: "\(directory)/\(prefix)-\(kind)-ubyte", contents: Data()))
            }
        }
        let both = try JobSpec.parse(yaml: "train: \(directory)\n")
        XCTAssertEqual(both.data.source, .files(format: .idx, train: directory, test: directory, csvLabelColumn: 0, csvHeader: nil))
        let trainOnly = try JobSpec.parse(yaml: "train: \(directory)\nno_test: true\n")
        XCTAssertEqual(trainOnly.data.source, .files(format: .idx, train: directory, test: nil, csvLabelColumn: 0, csvHeader: nil))
        XCTAssertEqual(try JobSpec.parse(yaml: trainOnly.yaml), trainOnly)

        try FileManager.default.removeItem(atPath: "\(directory)/t10k-labels-idx1-ubyte")
        let lines = problems("train: \(directory)\n")
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines.first?.hasPrefix("train (line 1): \(directory) has neither") ?? false, lines.first ?? "")
        XCTAssertTrue(lines.first?.hasSuffix("set no_test: true to train without one)") ?? false, lines.first ?? "")
    }

    func testSyntaxErrorNamesTheLine() {
        let lines = problems("synthetic: {}\nseed: 1\nlayers: [1, 2\nloss: squared\n")
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines.first?.hasPrefix("line ") ?? false, lines.first ?? "")
        XCTAssertTrue(lines.first?.contains("YAML syntax error") ?? false, lines.first ?? "")

        let duplicate = problems("synthetic: {}\nseed: 1\nseed: 2\n")
        XCTAssertEqual(duplicate.count, 1)
        XCTAssertTrue(duplicate.first?.contains("duplicate key seed") ?? false, duplicate.first ?? "")

        XCTAssertEqual(problems("- train\n- test\n"), ["the job spec must be a mapping of keys to values, got a list"])
    }

    func testCanonicalYAMLRoundTrips() throws {
        let full = try JobSpec.parse(yaml: fullSpec)
        XCTAssertEqual(try JobSpec.parse(yaml: full.yaml), full)

        var tricky = try JobSpec.parse(
            yaml: "synthetic: {train_rows: 30, test_rows: 10, features: 3, classes: 2, seed: 9}\nlambda_decrease: 0.6666666666666667\n")
        tricky.name = "null \"quoted\" \\ back\nslash\ttab: # é \u{2028}"
        let text = tricky.yaml
        XCTAssertEqual(try JobSpec.parse(yaml: text), tricky, text)

        // Every key, sorted, one per line.
        let keys = text.split(separator: "\n").map { String($0.prefix { $0 != ":" }) }
        XCTAssertEqual(keys, keys.sorted())
        XCTAssertTrue(keys.contains("time_limit") && keys.contains("csv_header") && keys.contains("synthetic"))
        XCTAssertTrue(text.contains("synthetic: {classes: 2, features: 3, seed: 9, test_rows: 10, train_rows: 30}\n"), text)
    }

    func testNetworkAndGridFromTheData() throws {
        let data = SyntheticData.classification(rows: 50, features: 6, classes: 3, seed: 1)
        let defaults = try JobSpec.parse(yaml: "synthetic: {features: 6, classes: 3}\n")
        let network = try defaults.network(for: data)
        XCTAssertEqual(network.layerSizes, [6, 300, 300, 3])
        XCTAssertEqual(try defaults.grid(for: network, servers: 1).partitionCounts, [1, 1, 1, 1])
        // Two servers: the first hidden layer is cut so W¹ (72 % of the weights) splits.
        XCTAssertEqual(try defaults.grid(for: network, servers: 2).partitionCounts, [1, 2, 1, 1])

        let split = try JobSpec.parse(yaml: "synthetic: {features: 6, classes: 3}\nlayers: 6,8,4\npartitions: 2,2,1\n")
        XCTAssertEqual(try split.grid(for: split.network(for: data), servers: 2).partitionCounts, [2, 2, 1])

        let wrong = try JobSpec.parse(yaml: "synthetic: {}\nlayers: [5, 8, 2]\n")
        XCTAssertThrowsError(try wrong.network(for: data)) { error in
            XCTAssertEqual((error as? DriverError)?.code, .invalidJob)
            XCTAssertEqual(
                (error as? DriverError)?.message,
                """
                invalid job spec:
                layers: starts with 5 inputs but the data has 6 features
                layers: ends with 2 outputs but the data has 3 classes
                """)
        }
        let tooMany = try JobSpec.parse(yaml: "synthetic: {}\npartitions: [1, 9, 1]\n")
        let small = try NetworkSpec(layerSizes: [6, 4, 3], activations: [.relu], loss: .crossEntropy)
        XCTAssertThrowsError(try tooMany.grid(for: small, servers: 1)) { error in
            XCTAssertEqual(
                (error as? DriverError)?.message, "invalid job spec:\npartitions: layer 1 has 4 neurons and cannot be cut into 9 groups")
        }
    }

    /// Sizes that would make the driver build ~10⁹ block ids or run CG for
    /// 2³¹ iterations are problems of the spec, found in well under a second.
    func testHostileSizesAreProblems() {
        let clock = ContinuousClock.now
        let lines = problems("synthetic: {}\nlayers: 1000000,998,2\npartitions: 1000000,998,2\ncg_max_iterations: 2147483648\n")
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(1))
        XCTAssertTrue(lines.contains { $0.contains("PartitionGrid.maxBlocks") }, lines.joined(separator: "\n"))
        XCTAssertTrue(
            lines.contains { $0.hasPrefix("cg_max_iterations (line 4): CG max iterations must be in 1...10000") },
            lines.joined(separator: "\n"))
        XCTAssertTrue(
            problems("synthetic: {train_rows: 9223372036854775807, test_rows: 9223372036854775807}\n")
                .contains { $0.contains("maxSyntheticRows") })
    }
}

extension JobSpecTests {
    func testDecentralisedKnobsParseAndPrintBack() throws {
        let spec = try JobSpec.parse(
            yaml: """
                synthetic: {train_rows: 100, test_rows: 0, features: 4, classes: 2, seed: 1}
                optimizer: next
                agents: 6
                graph: erdos-renyi:0.4
                time_varying: "0.5:3"
                surrogate: gauss-newton
                tau: 2.5
                step_size: 0.05
                step_decay: 0.02
                """)
        var expected = DecentralisedOptions()
        expected.agents = 6
        expected.topology = .erdosRenyi(0.4)
        expected.timeVarying = TimeVaryingGraph(activation: 0.5, window: 3)
        expected.surrogate = .gaussNewton
        expected.tau = 2.5
        expected.initialStep = 0.05
        expected.stepDecay = 0.02
        XCTAssertEqual(spec.optimizer, .next)
        XCTAssertEqual(spec.decentralised, expected)
        XCTAssertEqual(try JobSpec.parse(yaml: spec.yaml), spec)
        XCTAssertEqual(spec.summary, "next (6 agents, erdos-renyi:0.4, time-varying 0.5:3, gauss-newton surrogate, l2)")
    }

    func testDecentralisedProblemsNameTheirKeys() {
        let found = problems(
            """
            optimizer: next
            graph: torus
            time_varying: 2
            agents: 0
            surrogate: gauss-newton
            regularizer: l1
            """)
        XCTAssertTrue(found.contains { $0.hasPrefix("graph (line 2): expected ring, grid, star") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("time_varying") && $0.contains("activation probability must be in (0, 1]") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("agents") && $0.contains("needs 1 to 1024 agents") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("use the linear surrogate with l1") }, "\(found)")
    }
}
