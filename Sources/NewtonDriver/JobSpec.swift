import Foundation
import NewtonCore
import NewtonTraining
import Yams

/// A training job: what `newtonps submit` sends (a YAML mapping) and what
/// `newtonps train` builds from its flags. One table of keys defines both:
/// every key is a `train` flag with `_` written as `-` (`cg_tolerance` is
/// `--cg-tolerance`), with the same meaning, default and help. The data is
/// either files (`train`, `test`, `no_test`, `format`, `label_column`,
/// `csv_header`, `data_access`) or, in YAML only, a `synthetic:` mapping (`train_rows`,
/// `test_rows`, `features`, `classes`, `seed`). A key whose YAML value is
/// null counts as not given.
public struct JobSpec: Sendable, Equatable {
    /// Where the data comes from and how it is scaled.
    public var data: DataDescriptor
    /// How workers reach data files: from the files, or streamed from the driver.
    public var dataAccess: DataAccess
    /// Neurons per layer, input first; nil for `[features, 300, 300, classes]`
    /// of the data.
    public var layers: [Int]?
    /// One activation for all hidden layers, or one per hidden layer.
    public var activations: [Activation]
    public var loss: Loss
    public var optimizer: OptimizerKind
    /// C in ‖θ‖²/(2·C·l), for every optimiser (with `C: auto`, the C a
    /// held-out search starts from and falls back to).
    public var regularization: Double
    /// `C: auto`: choose C on a held-out split of the training rows
    /// (`RegularizationSearch`) before training.
    public var searchesRegularization: Bool
    /// CG limits and step control, shared by Newton-CG and Hessian-free.
    public var secondOrder: SecondOrderOptions
    public var newton: NewtonOptions
    public var hessianFree: HessianFreeOptions
    /// SGD / Adam knobs, with the learning rate resolved (unless given, 0.01
    /// for sgd and 0.001 for adam, as the CLI).
    public var firstOrder: FirstOrderOptions
    /// NEXT / DGD: agents, graph, surrogate, τ, regulariser and step sizes.
    public var decentralised: DecentralisedOptions
    public var budget: TrainingBudget
    /// Groups of neurons per layer, input first; nil for `PartitionGrid.balanced`
    /// over the servers.
    public var partitions: [Int]?
    /// Servers: on a cluster, how many of the registered ones to use; nil
    /// for all of them (`train`: 2).
    public var servers: Int?
    /// Workers: on a cluster, how many of the registered ones to use; nil
    /// for all of them (`train`: one per core).
    public var workers: Int?
    /// Rows per shard.
    public var shardRows: Int
    /// A checkpoint after every this many iterations (0: none). A cluster
    /// job resumes from its last one; `train` saves its model at each.
    public var checkpointEvery: Int
    /// Seeds the initial weights, the subsamples and the minibatch order.
    public var seed: UInt64
    /// Free text naming the job.
    public var name: String?

    /// Reads a job from YAML. Every problem found (syntax, unknown keys, wrong
    /// types, values out of range, missing or unreadable data files, a grid
    /// that does not fit the layers) is reported in one `.invalidJob` error,
    /// one problem per line, each naming its key and line. With a data root,
    /// data paths are relative to it and must lie inside it. `checkData:
    /// false` skips the data files (for a spec whose data lie on another
    /// machine, read only for its settings).
    public static func parse(yaml: String, dataRoot: DataRoot? = nil, checkData: Bool = true) throws -> JobSpec {
        let pairs: [(key: Node, value: Node)]
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw invalidJob([syntaxProblem(error)]) }
        if let root {
            guard let mapping = root.mapping else {
                throw invalidJob([SpecProblem("", "the job spec must be a mapping of keys to values, got \(describe(root))")])
            }
            pairs = Array(mapping)
        } else {
            pairs = []
        }

        var problems = [SpecProblem]()
        let given = fields(of: pairs, knobs: jobKnobs, prefix: "", problems: &problems)
        return try build(given, problems: problems, dataRoot: dataRoot, checkData: checkData)
    }

    /// Builds a job from command-line options: each key with its value as
    /// typed (flags given as "true"). Problems name the flag (`--key-name`).
    public static func parse(arguments: [(key: String, value: String)]) throws -> JobSpec {
        var problems = [SpecProblem]()
        var given = [SpecField<SpecDraft, JobSpec>]()
        for (key, value) in arguments {
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            guard let knob = jobKnobs.first(where: { $0.key == key && $0.isFlag }) else {
                problems.append(SpecProblem(flag, "is not a job setting"))
                continue
            }
            given.append(SpecField(knob: knob, value: Node(value, .implicit, .doubleQuoted), place: flag))
        }
        return try build(given, problems: problems, dataRoot: nil)
    }

    /// Every key `train` takes as a flag, in table order (`synthetic` is YAML only).
    public static var keys: [String] { jobKnobs.filter(\.isFlag).map(\.key) }

    /// What `key` sets, for `train --help` and docs/JOBS.md.
    public static func help(for key: String) -> String {
        jobKnobs.first { $0.key == key }?.help ?? ""
    }

    /// The default training data: Debian's Fashion-MNIST package.
    public static let defaultTrain = "/usr/share/datasets/fashion-mnist"

    private static func build(
        _ given: [SpecField<SpecDraft, JobSpec>], problems: [SpecProblem], dataRoot: DataRoot?, checkData: Bool = true
    ) throws -> JobSpec {
        var problems = problems
        let draft = apply(given, to: SpecDraft(), problems: &problems)
        if checkData { problems += dataProblems(draft, given: given, root: dataRoot) }
        problems += attributedValueProblems(given: given, draft: draft)
        guard problems.isEmpty else { throw invalidJob(problems) }
        return JobSpec(draft)
    }

    /// The network for the loaded training data: `layers` (or the default
    /// `[features, 300, 300, classes]`) must start with the data's features
    /// and end with at least its classes.
    public func network(for data: Dataset) throws -> NetworkSpec {
        try network(features: data.columns, classes: data.classCount)
    }

    /// The network for data of `features` columns and `classes` classes.
    public func network(features: Int, classes: Int) throws -> NetworkSpec {
        let sizes = layers ?? [features, 300, 300, classes]
        var problems = [SpecProblem]()
        if sizes.first != features {
            problems.append(SpecProblem("layers", "starts with \(sizes.first ?? 0) inputs but the data has \(features) features"))
        }
        if let outputs = sizes.last, outputs < classes {
            problems.append(SpecProblem("layers", "ends with \(outputs) outputs but the data has \(classes) classes"))
        }
        guard problems.isEmpty else { throw Self.invalidJob(problems) }
        do {
            return try NetworkSpec(layerSizes: sizes, activations: activations, loss: loss)
        } catch {
            throw Self.invalidJob([SpecProblem("layers", "\(error)")])
        }
    }

    /// The grid `partitions` cuts `network` into; without partitions, the
    /// one whose blocks `servers` servers share evenly
    /// (`PartitionGrid.balanced`: one block per layer for one server).
    public func grid(for network: NetworkSpec, servers: Int) throws -> PartitionGrid {
        guard let partitions else { return PartitionGrid.balanced(spec: network, servers: servers) }
        do {
            return try PartitionGrid(spec: network, partitions: partitions)
        } catch {
            throw Self.invalidJob([SpecProblem("partitions", "\(error)")])
        }
    }

    /// The run this spec describes on `network` (see `network(for:)`), with
    /// C given when a search chose it.
    public func trainingJob(network: NetworkSpec, regularization chosen: Double? = nil) -> TrainingJob {
        TrainingJob(
            network: network, optimizer: optimizer, regularization: chosen ?? regularization, secondOrder: secondOrder, newton: newton,
            hessianFree: hessianFree, firstOrder: firstOrder, decentralised: decentralised, budget: budget, seed: seed)
    }

    /// One line naming the optimiser and its main mode.
    public var summary: String {
        switch optimizer {
        case .newton:
            return "newton (\(newton.products.rawValue) products\(newton.blockDiagonal ? ", block-diagonal" : ""))"
        case .hessianFree:
            let batch = hessianFree.gradientBatch.map(String.init) ?? "full"
            return "hf (\(hessianFree.solver.rawValue), gradient batch \(batch), curvature batch \(hessianFree.curvatureBatch))"
        case .sgd, .adam:
            return "\(optimizer.rawValue) (batch \(firstOrder.batchSize))"
        case .next, .dgd:
            let d = decentralised
            let surrogate = optimizer == .next ? "\(d.surrogate.rawValue) surrogate, " : ""
            let varying = d.timeVarying.map { ", time-varying \($0.text)" } ?? ""
            return "\(optimizer.rawValue) (\(d.agents) agents, \(d.topology)\(varying), \(surrogate)\(d.regularizer.rawValue))"
        }
    }

    /// The canonical YAML form: every key, sorted, one per line; it parses
    /// back to an equal spec.
    public var yaml: String {
        jobKnobs.sorted { $0.key < $1.key }.map { "\($0.key): \($0.write(self))\n" }.joined()
    }

    /// The spec of a draft.
    private init(_ draft: SpecDraft) {
        let source: DataDescriptor.Source
        if let synthetic = draft.synthetic {
            source = .synthetic(
                trainRows: synthetic.trainRows, testRows: synthetic.testRows, features: synthetic.features,
                classes: synthetic.classes, seed: synthetic.seed)
        } else {
            source = .files(
                format: draft.format, train: draft.train, test: draft.effectiveTest, csvLabelColumn: draft.labelColumn,
                csvHeader: draft.csvHeader)
        }
        data = DataDescriptor(source: source, scaling: draft.scaling)
        dataAccess = draft.dataAccess
        layers = draft.layers
        activations = draft.activations
        loss = draft.loss
        optimizer = draft.optimizer
        regularization = draft.regularization
        searchesRegularization = draft.searchesRegularization
        secondOrder = draft.secondOrder
        newton = draft.newton
        hessianFree = draft.resolvedHessianFree
        firstOrder = draft.resolvedFirstOrder
        decentralised = draft.decentralised
        budget = draft.budget
        partitions = draft.partitions
        servers = draft.servers
        workers = draft.workers
        shardRows = draft.shardRows
        checkpointEvery = draft.checkpointEvery
        seed = draft.seed
        name = draft.name
    }

    private static func invalidJob(_ problems: [SpecProblem]) -> DriverError {
        DriverError(.invalidJob, "invalid job spec:\n" + problems.map(\.text).joined(separator: "\n"))
    }

    /// The data source's file settings, when the data is files.
    fileprivate var files: (format: DataFormat, train: String, test: String?, labelColumn: Int, header: Bool?)? {
        guard case .files(let format, let train, let test, let labelColumn, let header) = data.source else { return nil }
        return (format, train, test, labelColumn, header)
    }

    /// The data source's generator settings, when the data is synthetic.
    fileprivate var synthetic: SyntheticSpec? {
        guard case .synthetic(let trainRows, let testRows, let features, let classes, let seed) = data.source else { return nil }
        return SyntheticSpec(trainRows: trainRows, testRows: testRows, features: features, classes: classes, seed: seed)
    }
}

// MARK: - The keys

/// The spec's values while it is read, in the shape of its keys.
private struct SpecDraft {
    var train = JobSpec.defaultTrain
    var test: String?
    var noTest = false
    var format = DataFormat.idx
    var labelColumn = 0
    var csvHeader: Bool?
    var scaling = FeatureScaling.standardize
    var dataAccess = DataAccess.auto
    var synthetic: SyntheticSpec?
    var layers: [Int]?
    var activations: [Activation] = [.relu]
    var loss = Loss.crossEntropy
    var optimizer = OptimizerKind.newton
    var regularization = 0.01
    var searchesRegularization = false
    var secondOrder = SecondOrderOptions()
    var newton = NewtonOptions()
    var hessianFree = HessianFreeOptions()
    var firstOrder = FirstOrderOptions()
    var decentralised = DecentralisedOptions()
    /// nil for the default, which depends on the optimiser.
    var learningRate: Double?
    /// Hessian-free's gradient batch, which also overrides SGD/Adam's `batch_size`.
    var gradientBatch: BatchSize?
    var partitions: [Int]?
    var servers: Int?
    var workers: Int?
    var shardRows = 1000
    var checkpointEvery = 1
    var budget = TrainingBudget(maxIterations: 100)
    var seed: UInt64 = 1
    var name: String?

    var resolvedHessianFree: HessianFreeOptions {
        var options = hessianFree
        options.gradientBatch = gradientBatch?.rows
        return options
    }

    var resolvedFirstOrder: FirstOrderOptions {
        var options = firstOrder
        options.learningRate = learningRate ?? (optimizer == .adam ? 0.001 : 0.01)
        if let gradientBatch { options.batchSize = gradientBatch.rows ?? Int(Int32.max) }
        return options
    }

    /// The test set, as the CLI: an IDX training directory holds the test
    /// split too unless `no_test` is set.
    var effectiveTest: String? {
        guard !noTest else { return nil }
        if let test { return test }
        guard format == .idx else { return nil }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: train, isDirectory: &isDirectory) && isDirectory.boolValue ? train : nil
    }
}

/// The `synthetic:` mapping, with `newtonps synth`'s defaults.
private struct SyntheticSpec {
    var trainRows = 2000
    var testRows = 0
    var features = 20
    var classes = 4
    var seed: UInt64 = 1

    var problems: [String] {
        DataDescriptor.syntheticProblems(trainRows: trainRows, testRows: testRows, features: features, classes: classes)
    }
}

/// One key of a mapping: what it sets (its help), how its YAML value is read
/// into a `Target` and how a `Source` writes it back as YAML.
private struct SpecKnob<Target, Source>: Sendable {
    let key: String
    let help: String
    /// Also a `train` flag (every top-level key but `synthetic`).
    let isFlag: Bool
    let read: @Sendable (Node, inout Target) throws -> Void
    let write: @Sendable (Source) -> String

    init(
        key: String, help: String, isFlag: Bool, read: @escaping @Sendable (Node, inout Target) throws -> Void,
        write: @escaping @Sendable (Source) -> String
    ) {
        self.key = key
        self.help = help
        self.isFlag = isFlag
        self.read = read
        self.write = write
    }

    /// A key holding one scalar.
    init<T: SpecScalar>(
        _ key: String, _ help: String, _ set: @escaping @Sendable (inout Target, T) -> Void, _ get: @escaping @Sendable (Source) -> T?
    ) {
        self.init(
            key: key, help: help, isFlag: true, read: { node, target in set(&target, try T(node: node)) },
            write: { get($0)?.yamlText ?? "null" })
    }

    /// A key holding a list, given as a YAML list or a comma-separated string.
    init<T: SpecScalar>(
        _ key: String, _ help: String, list set: @escaping @Sendable (inout Target, [T]) -> Void,
        _ get: @escaping @Sendable (Source) -> [T]?
    ) {
        self.init(
            key: key, help: help, isFlag: true, read: { node, target in set(&target, try T.list(node: node)) },
            write: { get($0).map { "[" + $0.map(\.yamlText).joined(separator: ", ") + "]" } ?? "null" })
    }
}

private let syntheticKnobs: [SpecKnob<SyntheticSpec, SyntheticSpec>] = [
    SpecKnob("train_rows", "Training rows.", { $0.trainRows = $1 }, { $0.trainRows }),
    SpecKnob("test_rows", "Test rows.", { $0.testRows = $1 }, { $0.testRows }),
    SpecKnob("features", "Feature columns.", { $0.features = $1 }, { $0.features }),
    SpecKnob("classes", "Classes.", { $0.classes = $1 }, { $0.classes }),
    SpecKnob("seed", "Seed of the generator.", { $0.seed = $1 }, { $0.seed }),
]

private let syntheticKnob = SpecKnob<SpecDraft, JobSpec>(
    key: "synthetic", help: "Synthetic data instead of files: a mapping of train_rows, test_rows, features, classes, seed.",
    isFlag: false,
    read: { node, draft in
        guard let mapping = node.mapping else {
            throw SpecValueError("expected a mapping of \(syntheticKnobs.map(\.key).joined(separator: ", ")), got \(describe(node))")
        }
        var problems = [SpecProblem]()
        let given = fields(of: Array(mapping), knobs: syntheticKnobs, prefix: "synthetic.", problems: &problems)
        // Kept even with problems, so that the spec still counts as having synthetic data.
        draft.synthetic = apply(given, to: SyntheticSpec(), problems: &problems)
        guard problems.isEmpty else { throw SpecValueError(problems: problems) }
    },
    write: { spec in
        spec.synthetic.map { synthetic in
            "{" + syntheticKnobs.sorted { $0.key < $1.key }.map { "\($0.key): \($0.write(synthetic))" }.joined(separator: ", ") + "}"
        } ?? "null"
    })

/// Every top-level key, data first; `train --help` lists them in this order.
private let jobKnobs: [SpecKnob<SpecDraft, JobSpec>] = [
    SpecKnob(
        "train", "Training data: a file, or for idx a directory or images file (default: \(JobSpec.defaultTrain)).",
        { $0.train = $1 }, { $0.files?.train }),
    SpecKnob(
        "test", "Test data, same format (default: the t10k split next to idx training data; none otherwise).",
        { $0.test = $1 }, { $0.files?.test }),
    SpecKnob("no_test", "Train without a test set.", { $0.noTest = $1 }, { $0.files.map { $0.test == nil } }),
    SpecKnob("format", "Data format: idx, libsvm, csv or npy.", { $0.format = $1 }, { $0.files?.format }),
    SpecKnob(
        "label_column", "CSV, npy: the label column (0-based; negative counts from the end).", { $0.labelColumn = $1 },
        { $0.files?.labelColumn }),
    SpecKnob(
        "csv_header", "CSV: whether the first line is a header (true/false; default: detect).", { $0.csvHeader = $1 },
        { $0.files?.header }),
    SpecKnob(
        "scaling", "Feature scaling fitted on the training set: none, unit or standard.", { $0.scaling = $1 },
        { $0.data.scaling }),
    SpecKnob(
        key: "data_access",
        help: "How workers reach data files: local (read the files), stream (from the driver) or auto (local where readable).",
        isFlag: false, read: { node, draft in draft.dataAccess = try DataAccess(node: node) }, write: { $0.dataAccess.yamlText }),
    syntheticKnob,

    SpecKnob(
        "layers", "Neurons per layer, input first (default: <features>,300,300,<classes>).", list: { $0.layers = $1 },
        { $0.layers }),
    SpecKnob(
        "activation", "Hidden activation(s): sigmoid, tanh or relu; one for all hidden layers or one per hidden layer.",
        list: { $0.activations = $1 }, { $0.activations }),
    SpecKnob("loss", "Loss: squared or cross-entropy.", { $0.loss = $1 }, { $0.loss }),

    SpecKnob(
        "optimizer", "newton, hf (Hessian-free), sgd, adam, or over a graph of agents next or dgd.",
        { $0.optimizer = $1 }, { $0.optimizer }),
    SpecKnob(
        "C",
        "Regularisation constant C in ‖θ‖²/(2·C·l), for every optimiser, or auto: the best of 0.01, 0.1, 1, 10, 100 on a held-out fifth of the training rows (not next, dgd).",
        { (draft, value: RegularizationValue) in
            switch value {
            case .auto: draft.searchesRegularization = true
            case .fixed(let c):
                draft.regularization = c
                draft.searchesRegularization = false
            }
        }, { $0.searchesRegularization ? .auto : .fixed($0.regularization) }),
    SpecKnob(
        "subsample", "Newton: Gauss-Newton subsample as a fraction of the rows.", { $0.newton.subsampleFraction = $1 },
        { $0.newton.subsampleFraction }),
    SpecKnob(
        "gradient_sample",
        "Newton: progressive batching; f, ∇f and the line search on a fresh sample of this fraction of the rows in the first iteration (1: every row).",
        { $0.newton.gradientSampleFraction = $1 }, { $0.newton.gradientSampleFraction }),
    SpecKnob(
        "gradient_sample_growth", "Newton: the gradient sample grows by this factor each iteration until it covers every row.",
        { $0.newton.gradientSampleGrowth = $1 }, { $0.newton.gradientSampleGrowth }),
    SpecKnob(
        "cg_tolerance", "Newton, HF: CG stops at ‖r‖ ≤ ξ‖∇f‖.", { $0.secondOrder.cgTolerance = $1 }, { $0.secondOrder.cgTolerance }),
    SpecKnob(
        "cg_max_iterations", "Newton, HF: CG iteration cap.", { $0.secondOrder.cgMaxIterations = $1 },
        { $0.secondOrder.cgMaxIterations }),
    SpecKnob(
        "lambda", "Newton, HF: initial Levenberg–Marquardt λ.", { $0.secondOrder.step.initialLambda = $1 },
        { $0.secondOrder.step.initialLambda }),
    SpecKnob(
        "lambda_increase", "Newton, HF: λ factor when ρ < 0.25.", { $0.secondOrder.step.lambdaIncrease = $1 },
        { $0.secondOrder.step.lambdaIncrease }),
    SpecKnob(
        "lambda_decrease", "Newton, HF: λ factor when ρ ≥ 0.75.", { $0.secondOrder.step.lambdaDecrease = $1 },
        { $0.secondOrder.step.lambdaDecrease }),
    SpecKnob("armijo", "Newton, HF: Armijo constant η.", { $0.secondOrder.step.armijo = $1 }, { $0.secondOrder.step.armijo }),
    SpecKnob(
        "line_search_steps", "Newton, HF: halvings of the step before the line search gives up.",
        { $0.secondOrder.step.maxLineSearchSteps = $1 }, { $0.secondOrder.step.maxLineSearchSteps }),
    SpecKnob(
        "line_search_failures", "Newton, HF: stop (as stalled) after this many failed line searches in a row.",
        { $0.secondOrder.step.maxLineSearchFailures = $1 }, { $0.secondOrder.step.maxLineSearchFailures }),
    SpecKnob(
        "products", "Newton: Gauss-Newton products from cached Jacobians (jacobian) or R-operator passes (rop).",
        { $0.newton.products = $1 }, { $0.newton.products }),
    SpecKnob(
        "block_diagonal", "Newton: block-diagonal G; each block solves its own CG with no exchange.",
        { $0.newton.blockDiagonal = $1 }, { $0.newton.blockDiagonal }),
    SpecKnob(
        "straggler_cutoff", "Newton, block-diagonal: stop the direction search once this fraction of blocks has finished.",
        { $0.newton.stragglerCutoff = $1 }, { $0.newton.stragglerCutoff }),
    SpecKnob(
        "solver", "HF: gn-cg (CG on Gauss-Newton), hessian-cg (CG on the Hessian, keeps negative curvature) or bicgstab.",
        { $0.hessianFree.solver = $1 }, { $0.hessianFree.solver }),
    SpecKnob(
        "gradient_batch", "HF, SGD/Adam: rows per gradient minibatch, or 'full' (HF default: full; SGD/Adam: batch_size).",
        { $0.gradientBatch = $1 }, { $0.hessianFree.gradientBatch.map(BatchSize.count) }),
    SpecKnob(
        "curvature_batch", "HF: rows per curvature minibatch.", { $0.hessianFree.curvatureBatch = $1 },
        { $0.hessianFree.curvatureBatch }),
    SpecKnob(
        "warm_start", "HF: start each solve from this fraction of the previous solution (0: from zero).",
        { $0.hessianFree.warmStart = $1 }, { $0.hessianFree.warmStart }),
    SpecKnob(
        "backtracking", "HF: backtrack over kept CG iterates (default true).", { $0.hessianFree.iterateBacktracking = $1 },
        { $0.hessianFree.iterateBacktracking }),
    SpecKnob(
        "relative_progress", "HF: Martens' relative-progress stop for CG (default true).",
        { $0.hessianFree.relativeProgressStop = $1 }, { $0.hessianFree.relativeProgressStop }),
    SpecKnob(
        "preconditioner", "HF (CG solvers): Martens' diagonal preconditioner from the curvature batch.",
        { $0.hessianFree.diagonalPreconditioner = $1 }, { $0.hessianFree.diagonalPreconditioner }),
    SpecKnob(
        "negative_curvature_tolerance", "HF, hessian-cg: negative curvature when pᵀ(H+μI)p ≤ ε‖p‖², μ = λ + 1/(C·l).",
        { $0.hessianFree.negativeCurvatureTolerance = $1 }, { $0.hessianFree.negativeCurvatureTolerance }),
    SpecKnob(
        "negative_curvature_step",
        "HF, hessian-cg: separate (search the Newton part, then the negative-curvature direction from there) or combined (one search along their sum).",
        { $0.hessianFree.negativeCurvatureStep = $1 }, { $0.hessianFree.negativeCurvatureStep }),
    SpecKnob(
        "curvature_diagnostics",
        "HF: measure the negative-curvature share of a combined step's decrease (one more evaluation per such iteration).",
        { $0.hessianFree.diagnostics = $1 }, { $0.hessianFree.diagnostics }),
    SpecKnob(
        "learning_rate", "SGD/Adam: learning rate (default 0.01 for sgd, 0.001 for adam).", { $0.learningRate = $1 },
        { $0.firstOrder.learningRate }),
    SpecKnob("momentum", "SGD: momentum.", { $0.firstOrder.momentum = $1 }, { $0.firstOrder.momentum }),
    SpecKnob("batch_size", "SGD/Adam: minibatch rows.", { $0.firstOrder.batchSize = $1 }, { $0.firstOrder.batchSize }),
    SpecKnob("adam_beta1", "Adam: β₁.", { $0.firstOrder.beta1 = $1 }, { $0.firstOrder.beta1 }),
    SpecKnob("adam_beta2", "Adam: β₂.", { $0.firstOrder.beta2 = $1 }, { $0.firstOrder.beta2 }),
    SpecKnob("adam_epsilon", "Adam: ε.", { $0.firstOrder.epsilon = $1 }, { $0.firstOrder.epsilon }),
    SpecKnob(
        "agents", "NEXT, DGD: agents, each with an equal contiguous share of the rows.", { $0.decentralised.agents = $1 },
        { $0.decentralised.agents }),
    SpecKnob(
        "graph", "NEXT, DGD: \(GraphTopology.spelling).", { $0.decentralised.topology = $1 }, { $0.decentralised.topology }),
    SpecKnob(
        "time_varying",
        "NEXT, DGD: Q or Q:B, each graph edge active with probability Q in each round, the union over every B rounds (default 4) connected.",
        { $0.decentralised.timeVarying = $1 }, { $0.decentralised.timeVarying }),
    SpecKnob(
        "surrogate", "NEXT: the local surrogate, linear or gauss-newton (CG on the agent's workers).",
        { $0.decentralised.surrogate = $1 }, { $0.decentralised.surrogate }),
    SpecKnob(
        "tau", "NEXT, DGD: τ of the proximal term for every agent (default: each agent's own from its curvature).",
        { $0.decentralised.tau = $1 }, { $0.decentralised.tau }),
    SpecKnob(
        "regularizer", "NEXT, DGD: l2 (‖w‖²/(2·C·l), the centralised objective) or l1 (λ‖w‖₁ with λ from l1).",
        { $0.decentralised.regularizer = $1 }, { $0.decentralised.regularizer }),
    SpecKnob("l1", "NEXT, DGD: λ of the l1 regulariser.", { $0.decentralised.l1Strength = $1 }, { $0.decentralised.l1Strength }),
    SpecKnob(
        "step_size", "NEXT, DGD: α⁰ of α[n] = α[n−1](1 − ε·α[n−1]).", { $0.decentralised.initialStep = $1 },
        { $0.decentralised.initialStep }),
    SpecKnob(
        "step_decay", "NEXT, DGD: ε of α[n] = α[n−1](1 − ε·α[n−1]).", { $0.decentralised.stepDecay = $1 },
        { $0.decentralised.stepDecay }),

    SpecKnob(
        "partitions",
        "Groups of neurons per layer, input first, e.g. 2,2,2,1 (default: cut until the servers share the weights within 10 %; one group per layer for one server).",
        list: { $0.partitions = $1 }, { $0.partitions }),
    SpecKnob(
        "servers",
        "Parameter servers (train: 2, or 1 per agent for next/dgd; a cluster job: every registered server; agent processes have their own).",
        { $0.servers = $1 },
        { $0.servers }),
    SpecKnob(
        "workers",
        "Workers (train: one per core, or 1 per agent for next/dgd; a cluster job: every live worker; agent processes have their own).",
        { $0.workers = $1 },
        { $0.workers }),
    SpecKnob(
        "shard_rows", "Rows per shard (fixed; results do not depend on the number of workers).", { $0.shardRows = $1 },
        { $0.shardRows }),

    SpecKnob(
        "max_iterations", "Newton iterations (epochs for sgd/adam, rounds for next/dgd).", { $0.budget.maxIterations = $1 },
        { $0.budget.maxIterations }),
    SpecKnob("time_limit", "Stop after this many seconds of training.", { $0.budget.timeLimit = $1 }, { $0.budget.timeLimit }),
    SpecKnob(
        "gradient_tolerance", "Stop once ‖∇f‖ falls below this fraction of its initial value (0: never).",
        { $0.budget.gradientTolerance = $1 }, { $0.budget.gradientTolerance }),
    SpecKnob(
        "checkpoint_every",
        "Checkpoint every this many iterations (0: never): a cluster job resumes from its last checkpoint after a lost server or a driver restart; train with --save saves the model at each.",
        { $0.checkpointEvery = $1 }, { $0.checkpointEvery }),
    SpecKnob("seed", "Seed for the initial weights, subsamples and minibatch order.", { $0.seed = $1 }, { $0.seed }),
    SpecKnob("name", "Free text naming the job.", { $0.name = $1 }, { $0.name }),
]

/// The keys that describe data files, which synthetic data replaces.
private let fileKeys = ["train", "test", "no_test", "format", "label_column", "csv_header"]

// MARK: - Reading values

/// A value type a YAML scalar can hold.
private protocol SpecScalar: Sendable {
    /// What a value must look like, for messages ("an integer").
    static var expectation: String { get }
    init?(yamlText: String)
    /// The value as YAML that reads back equal.
    var yamlText: String { get }
}

extension SpecScalar {
    init(node: Node) throws {
        guard let scalar = node.scalar else { throw SpecValueError("expected \(Self.expectation), got \(describe(node))") }
        try self.init(text: scalar.string)
    }

    init(text: String) throws {
        guard let value = Self(yamlText: text) else { throw SpecValueError("expected \(Self.expectation), got '\(text)'") }
        self = value
    }

    /// A non-empty list: a YAML list of scalars or one comma-separated scalar.
    static func list(node: Node) throws -> [Self] {
        let values: [Self]
        if let sequence = node.sequence {
            values = try sequence.map { try Self(node: $0) }
        } else if let scalar = node.scalar {
            values = try scalar.string.split(separator: ",", omittingEmptySubsequences: false)
                .map { try Self(text: $0.trimmingCharacters(in: .whitespaces)) }
        } else {
            throw SpecValueError("expected a list, got \(describe(node))")
        }
        guard !values.isEmpty else { throw SpecValueError("expected a non-empty list") }
        return values
    }
}

extension Int: SpecScalar {
    static var expectation: String { "an integer" }
    init?(yamlText: String) { self.init(yamlText, radix: 10) }
    var yamlText: String { String(self) }
}

extension UInt64: SpecScalar {
    static var expectation: String { "a non-negative integer" }
    init?(yamlText: String) { self.init(yamlText, radix: 10) }
    var yamlText: String { String(self) }
}

/// `C`: a number, or `auto` for a held-out search.
private enum RegularizationValue: SpecScalar {
    case fixed(Double)
    case auto

    static var expectation: String { "a number or auto" }
    init?(yamlText: String) {
        if yamlText == "auto" {
            self = .auto
        } else if let c = Double(yamlText: yamlText) {
            self = .fixed(c)
        } else {
            return nil
        }
    }
    var yamlText: String {
        switch self {
        case .auto: "auto"
        case .fixed(let c): c.yamlText
        }
    }
}

extension Double: SpecScalar {
    static var expectation: String { "a number" }
    init?(yamlText: String) { self.init(yamlText) }
    /// Swift's shortest representation that reads back to the same bits.
    var yamlText: String { "\(self)" }
}

extension Bool: SpecScalar {
    static var expectation: String { "true or false" }
    init?(yamlText: String) {
        switch yamlText.lowercased() {
        case "true": self = true
        case "false": self = false
        default: return nil
        }
    }
    var yamlText: String { self ? "true" : "false" }
}

extension String: SpecScalar {
    static var expectation: String { "text" }
    init?(yamlText: String) { self = yamlText }

    /// Double-quoted, with quotes, backslashes, control characters and
    /// Unicode line separators escaped.
    var yamlText: String {
        var out = "\""
        for c in unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20 || (0x7F...0x9F).contains(c.value) || c.value == 0x2028 || c.value == 0x2029 || c.value == 0xFEFF:
                out += String(format: "\\u%04X", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}

/// A minibatch size: a number of rows, or every row.
private enum BatchSize: SpecScalar, Equatable {
    case full
    case count(Int)

    static var expectation: String { "a positive number of rows or 'full'" }

    init?(yamlText: String) {
        if yamlText == "full" {
            self = .full
        } else if let n = Int(yamlText, radix: 10), n > 0 {
            self = .count(n)
        } else {
            return nil
        }
    }

    var yamlText: String {
        switch self {
        case .full: return "full"
        case .count(let n): return String(n)
        }
    }

    /// The row count, or nil for every row.
    var rows: Int? {
        if case .count(let n) = self { return n }
        return nil
    }
}

/// An enumeration spelled by its raw values.
private protocol SpecChoice: SpecScalar, CaseIterable, RawRepresentable, Equatable where RawValue == String {
    /// The values a spec may name.
    static var choices: [Self] { get }
}

extension SpecChoice {
    static var choices: [Self] { Array(allCases) }
    static var expectation: String { "one of " + choices.map(\.rawValue).joined(separator: ", ") }
    init?(yamlText: String) {
        guard let value = Self(rawValue: yamlText), Self.choices.contains(value) else { return nil }
        self = value
    }
    var yamlText: String { rawValue }
}

extension DataFormat: SpecChoice {}
extension FeatureScaling: SpecChoice {}
extension DataAccess: SpecChoice {}
extension Loss: SpecChoice {}
extension OptimizerKind: SpecChoice {}
extension ProductsMode: SpecChoice {}
extension CurvatureSolver: SpecChoice {}
extension NegativeCurvatureStep: SpecChoice {}
extension Surrogate: SpecChoice {}
extension Regularizer: SpecChoice {}

extension GraphTopology: SpecScalar {
    static var expectation: String { GraphTopology.spelling }
    init?(yamlText: String) { self.init(text: yamlText) }
    var yamlText: String { description.yamlText }
}

extension TimeVaryingGraph: SpecScalar {
    static var expectation: String { "Q or Q:B (an edge probability and a window of rounds)" }
    init?(yamlText: String) { self.init(text: yamlText) }
    var yamlText: String { text.yamlText }
}
extension Activation: SpecChoice {
    /// Linear is reserved for the output layer.
    static var choices: [Activation] { [.sigmoid, .tanh, .relu] }
}

// MARK: - Problems

/// One problem with a spec: where (key and line) and what.
private struct SpecProblem {
    var place: String
    var message: String

    init(_ place: String, _ message: String) {
        self.place = place
        self.message = message
    }

    var text: String { place.isEmpty ? message : "\(place): \(message)" }
}

/// A value that cannot be read; problems without a place get the key's.
private struct SpecValueError: Error {
    var problems: [SpecProblem]

    init(_ message: String) { problems = [SpecProblem("", message)] }
    init(problems: [SpecProblem]) { self.problems = problems }
}

/// A known key found in a mapping, with its value.
private struct SpecField<Target, Source> {
    let knob: SpecKnob<Target, Source>
    let value: Node
    /// The key as the spec spells it, with its line.
    let place: String
}

/// The known keys of a mapping, in document order. Unknown keys (with the
/// closest known key when one is close) and keys that are not names become
/// problems; null values count as not given.
private func fields<T, S>(
    of pairs: [(key: Node, value: Node)], knobs: [SpecKnob<T, S>], prefix: String,
    problems: inout [SpecProblem]
) -> [SpecField<T, S>] {
    var found = [SpecField<T, S>]()
    for (key, value) in pairs {
        let line = key.mark.map { " (line \($0.line))" } ?? ""
        guard let name = key.scalar?.string else {
            problems.append(SpecProblem(key.mark.map { "line \($0.line)" } ?? "", "keys must be names, got \(describe(key))"))
            continue
        }
        guard let knob = knobs.first(where: { $0.key == name }) else {
            let hint = closest(to: name, among: knobs.map(\.key)).map { "; did you mean \(prefix)\($0)?" } ?? ""
            problems.append(SpecProblem("\(prefix)\(name)\(line)", "unknown key\(hint)"))
            continue
        }
        if !isNull(value) { found.append(SpecField(knob: knob, value: value, place: "\(prefix)\(name)\(line)")) }
    }
    return found
}

/// Reads `fields` into `target`; values that cannot be read are problems and
/// leave the target's default.
private func apply<T, S>(_ fields: [SpecField<T, S>], to target: T, problems: inout [SpecProblem]) -> T {
    var target = target
    for field in fields {
        do {
            try field.knob.read(field.value, &target)
        } catch let error as SpecValueError {
            problems += error.problems.map { $0.place.isEmpty ? SpecProblem(field.place, $0.message) : $0 }
        } catch {
            problems.append(SpecProblem(field.place, "\(error)"))
        }
    }
    return target
}

/// Data problems: files and synthetic data both given or neither, a test set
/// with `no_test`, data files that do not exist, cannot be read or lie
/// outside the data root.
private func dataProblems(_ draft: SpecDraft, given: [SpecField<SpecDraft, JobSpec>], root: DataRoot?) -> [SpecProblem] {
    func place(_ key: String) -> String { given.first { $0.knob.key == key }?.place ?? key }
    if draft.synthetic != nil {
        return given.filter { fileKeys.contains($0.knob.key) }.map {
            SpecProblem($0.place, "describes data files, but \(place("synthetic")) gives synthetic data; give one or the other")
        }
    }
    let train = draft.train
    var problems = [SpecProblem]()
    if draft.noTest && draft.test != nil {
        problems.append(SpecProblem(place("test"), "a test set is given but \(place("no_test")) says there is none"))
    }
    if let problem = fileProblem(train, split: .train, draft, root: root) { problems.append(SpecProblem(place("train"), problem)) }
    if let test = draft.effectiveTest, let problem = fileProblem(test, split: .test, draft, root: root) {
        problems.append(
            draft.test == nil
                ? SpecProblem(
                    place("train"),
                    "\(problem) (the test set defaults to the directory's t10k files; set no_test: true to train without one)")
                : SpecProblem(place("test"), problem))
    }
    return problems
}

/// Why the data at `path` cannot be read, or nil when it can.
private func fileProblem(_ path: String, split: DataSplit, _ draft: SpecDraft, root: DataRoot?) -> String? {
    do {
        let csv = CSVOptions(labelColumn: draft.labelColumn, hasHeader: draft.csvHeader)
        let path = try root?.locate(path) ?? path
        let source = try DataSource.resolve(path: path, format: draft.format, split: split, csv: csv)
        let unreadable = [source.path, source.labelsPath].compactMap { $0 }.filter { !FileManager.default.isReadableFile(atPath: $0) }
        return unreadable.isEmpty ? nil : "\(unreadable.joined(separator: " and ")) cannot be read"
    } catch {
        return "\(error)"
    }
}

/// The values out of range, alone or together: the options' own checks,
/// the budget's, the cluster's, and the network and grid when `layers` is
/// given.
private func valueProblems(_ draft: SpecDraft) -> [String] {
    var p =
        draft.secondOrder.problems + draft.newton.problems + draft.resolvedHessianFree.problems + draft.resolvedFirstOrder.problems
        + draft.decentralised.problems
    if !(draft.regularization > 0 && draft.regularization.isFinite) {
        p.append("regularization C must be positive and finite, got \(draft.regularization)")
    }
    if draft.searchesRegularization && draft.optimizer.decentralised != nil {
        p.append("C: auto chooses C for newton, hf, sgd and adam; \(draft.optimizer.rawValue) needs a number")
    }
    let budget = draft.budget
    if budget.maxIterations < 0 { p.append("max iterations must be non-negative, got \(budget.maxIterations)") }
    if let t = budget.timeLimit, !(t > 0) { p.append("time limit must be positive, got \(t)") }
    if !(budget.gradientTolerance >= 0 && budget.gradientTolerance < 1) {
        p.append("gradient tolerance must be in [0, 1), got \(budget.gradientTolerance)")
    }
    if draft.shardRows < 1 { p.append("shard rows must be at least 1, got \(draft.shardRows)") }
    if draft.checkpointEvery < 0 { p.append("checkpoint_every must be 0 (never) or more, got \(draft.checkpointEvery)") }
    if let servers = draft.servers, servers < 1 { p.append("servers must be at least 1 (leave it out for all), got \(servers)") }
    if let workers = draft.workers, workers < 1 { p.append("workers must be at least 1 (leave it out for all), got \(workers)") }
    p += draft.synthetic?.problems ?? []
    if let layers = draft.layers {
        let weights = zip(layers, layers.dropFirst()).reduce(0.0) { $0 + Double($1.0) * Double($1.1 + 1) }
        if layers.contains(where: { $0 > 1_000_000 }) || weights > 1e9 {
            p.append("layers \(layers) are too large (at most 10^6 neurons per layer and 10^9 weights)")
        }
        do {
            let network = try NetworkSpec(layerSizes: layers, activations: draft.activations, loss: draft.loss)
            if let partitions = draft.partitions { _ = try PartitionGrid(spec: network, partitions: partitions) }
        } catch {
            p.append("\(error)")
        }
    } else if let partitions = draft.partitions, let bad = partitions.first(where: { $0 < 1 }) {
        p.append("every layer needs at least one group, got \(bad) in \(partitions)")
    }
    var seen = Set<String>()
    return p.filter { seen.insert($0).inserted }
}

/// `valueProblems`, each placed at the keys that cause it: those without
/// which the problem goes away.
private func attributedValueProblems(given: [SpecField<SpecDraft, JobSpec>], draft: SpecDraft) -> [SpecProblem] {
    let problems = valueProblems(draft)
    guard !problems.isEmpty else { return [] }
    let withoutEach = given.indices.map { skipped in
        var ignored = [SpecProblem]()
        let fewer = given.indices.filter { $0 != skipped }.map { given[$0] }
        return Set(valueProblems(apply(fewer, to: SpecDraft(), problems: &ignored)))
    }
    return problems.map { message in
        let culprits = given.indices.filter { !withoutEach[$0].contains(message) }.map { given[$0].place }
        return SpecProblem(culprits.joined(separator: ", "), message)
    }
}

/// A YAML syntax error, with its line and column.
private func syntaxProblem(_ error: any Error) -> SpecProblem {
    switch error as? YamlError {
    case .scanner(let context, let problem, let mark, _)?, .parser(let context, let problem, let mark, _)?,
        .composer(let context, let problem, let mark, _)?:
        let detail = context.map { "\($0.text) at line \($0.mark.line), " } ?? ""
        return SpecProblem("line \(mark.line), column \(mark.column)", "YAML syntax error: \(detail)\(problem)")
    case .duplicatedKeysInMapping(let duplicates, let context)?:
        return SpecProblem("line \(context.mark.line)", "duplicate key \(duplicates.joined(separator: ", "))")
    default:
        return SpecProblem("", "YAML syntax error: \(error)")
    }
}

private func isNull(_ node: Node) -> Bool {
    guard let scalar = node.scalar, scalar.style == .plain || scalar.style == .any else { return false }
    return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
}

private func describe(_ node: Node) -> String {
    if let scalar = node.scalar { return "'\(scalar.string)'" }
    return node.sequence != nil ? "a list" : node.mapping != nil ? "a mapping" : "an alias"
}

/// The known key within two edits of `key` (ignoring case and `-` for `_`).
private func closest(to key: String, among keys: [String]) -> String? {
    func normalized(_ s: String) -> [Character] { Array(s.lowercased().replacingOccurrences(of: "-", with: "_")) }
    let target = normalized(key)
    let best = keys.map { ($0, editDistance(normalized($0), target)) }.min { $0.1 < $1.1 }
    guard let best, best.1 <= 2 else { return nil }
    return best.0
}

/// Levenshtein distance.
private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var current = [i + 1]
        for (j, y) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
