import ArgumentParser
import Foundation
import NewtonCore
import NewtonTraining

extension DataFormat: ExpressibleByArgument {}
extension FeatureScaling: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}
extension Loss: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension ProductsMode: ExpressibleByArgument {}
extension CurvatureSolver: ExpressibleByArgument {}

/// Where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: "Training data: a file, or for idx a directory or images file.")
    var train: String = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Test data, same format (default: the t10k split next to idx training data; none otherwise).")
    var test: String?
    @Flag(help: "Train without a test set.")
    var noTest = false
    @Option(help: "Data format: idx, libsvm or csv.")
    var format: DataFormat = .idx
    @Option(help: "CSV: the label column (0-based; negative counts from the end).")
    var labelColumn = 0
    @Option(help: "CSV: whether the first line is a header (true/false; default: detect).")
    var csvHeader: Bool?
    @Option(help: "Feature scaling fitted on the training set: \(FeatureScaling.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scaling: FeatureScaling = .standardize

    var descriptor: DataDescriptor {
        // An IDX directory holds both splits; any other training path has no
        // implied test set.
        var isDirectory: ObjCBool = false
        let trainIsDirectory = FileManager.default.fileExists(atPath: train, isDirectory: &isDirectory) && isDirectory.boolValue
        var testPath = test
        if testPath == nil && format == .idx && trainIsDirectory { testPath = train }
        if noTest { testPath = nil }
        return DataDescriptor(
            source: .files(format: format, train: train, test: testPath, csvLabelColumn: labelColumn, csvHeader: csvHeader),
            scaling: scaling)
    }
}

/// The network.
struct ModelOptions: ParsableArguments {
    @Option(help: "Neurons per layer, input first (default: <features>,300,300,<classes>).", transform: parseIntegerList)
    var layers: [Int]?
    @Option(
        help: "Hidden activation(s): sigmoid, tanh or relu; one for all layers or one per hidden layer, comma separated.",
        transform: parseActivations)
    var activation: [Activation] = [.relu]
    @Option(help: "Loss: squared or cross-entropy.")
    var loss: Loss = .crossEntropy

    func network(for data: Dataset) throws -> NetworkSpec {
        let layers = self.layers ?? [data.columns, 300, 300, data.classCount]
        guard layers.first == data.columns else {
            throw ValidationError("--layers starts with \(layers.first ?? 0) inputs but the data has \(data.columns) features")
        }
        guard let classes = layers.last, classes >= data.classCount else {
            throw ValidationError("--layers ends with \(layers.last ?? 0) outputs but the data has \(data.classCount) classes")
        }
        return try NetworkSpec(layerSizes: layers, activations: activation, loss: loss)
    }
}

/// The optimiser and every knob of it.
struct OptimizerOptions: ParsableArguments {
    @Option(help: "newton, hf (Hessian-free), sgd or adam.")
    var optimizer: OptimizerKind = .newton
    @Option(name: .customLong("C"), help: "Regularisation constant C in ‖θ‖²/(2·C·l).")
    var regularization = 0.01
    @Option(help: "Newton: Gauss-Newton subsample as a fraction of the rows.")
    var subsample = 0.05
    @Option(help: "Newton: CG stops at ‖r‖ ≤ ξ‖∇f‖.")
    var cgTolerance = 0.1
    @Option(help: "Newton: CG iteration cap.")
    var cgMaxIterations = 250
    @Option(help: "Newton, HF: initial Levenberg–Marquardt λ.")
    var lambda = 1.0
    @Option(help: "Newton, HF: λ factor when ρ < 0.25.")
    var lambdaIncrease = 1.5
    @Option(help: "Newton, HF: λ factor when ρ ≥ 0.75.")
    var lambdaDecrease = 2.0 / 3.0
    @Option(help: "Newton: Armijo constant η.")
    var armijo = 1e-4
    @Option(help: "Newton: halvings of the step before the line search gives up.")
    var lineSearchSteps = 20
    @Option(help: "Newton: stop (as stalled) after this many failed line searches in a row.")
    var lineSearchFailures = 5
    @Option(help: "Newton: Gauss-Newton products from cached Jacobians (jacobian) or R-operator passes (rop).")
    var products: ProductsMode = .jacobian
    @Flag(help: "Newton: block-diagonal G; each block solves its own CG with no exchange.")
    var blockDiagonal = false
    @Option(help: "Newton, block-diagonal: stop the direction search once this fraction of blocks has finished.")
    var stragglerCutoff = 1.0
    @Option(help: "HF: gn-cg (CG on Gauss-Newton), hessian-cg (CG on the Hessian, keeps negative curvature) or bicgstab.")
    var solver: CurvatureSolver = .hessianCG
    @Option(help: "HF, SGD/Adam: rows per gradient minibatch, or 'full' (HF default: full; SGD/Adam: --batch-size).")
    var gradientBatch: BatchSize?
    @Option(help: "HF: rows per curvature minibatch.")
    var curvatureBatch = 3000
    @Option(help: "HF: start each solve from this fraction of the previous solution (0: from zero).")
    var warmStart = 0.95
    @Flag(help: "HF: no CG-iterate backtracking.")
    var noBacktracking = false
    @Flag(help: "HF: no Martens relative-progress stop.")
    var noRelativeProgress = false
    @Flag(help: "HF (CG solvers): Martens' diagonal preconditioner from the curvature batch.")
    var preconditioner = false
    @Option(help: "HF, hessian-cg: negative curvature when pᵀ(H+μI)p ≤ ε‖p‖², μ = λ + 1/(C·l).")
    var negativeCurvatureTolerance = 1e-10
    @Option(help: "SGD/Adam: learning rate.")
    var learningRate: Double?
    @Option(help: "SGD: momentum.")
    var momentum = 0.9
    @Option(help: "SGD/Adam: minibatch rows.")
    var batchSize = 128
    @Option(help: "Adam: β₁.")
    var adamBeta1 = 0.9
    @Option(help: "Adam: β₂.")
    var adamBeta2 = 0.999
    @Option(help: "Adam: ε.")
    var adamEpsilon = 1e-8

    /// One line naming the optimiser and its main mode.
    var summary: String {
        switch optimizer {
        case .newton: return "newton (\(products.rawValue) products\(blockDiagonal ? ", block-diagonal" : ""))"
        case .hessianFree:
            return
                "hf (\(solver.rawValue), gradient batch \(gradientBatch?.rows.map(String.init) ?? "full"), curvature batch \(curvatureBatch))"
        case .sgd, .adam:
            return "\(optimizer.rawValue) (batch \(gradientBatch.map { $0.rows.map(String.init) ?? "full" } ?? String(batchSize)))"
        }
    }

    func job(network: NetworkSpec, budget: TrainingBudget, seed: UInt64) -> TrainingJob {
        var newton = NewtonOptions()
        newton.regularization = regularization
        newton.subsampleFraction = subsample
        newton.cgTolerance = cgTolerance
        newton.cgMaxIterations = cgMaxIterations
        var step = StepControl()
        step.initialLambda = lambda
        step.lambdaIncrease = lambdaIncrease
        step.lambdaDecrease = lambdaDecrease
        step.armijo = armijo
        step.maxLineSearchSteps = lineSearchSteps
        step.maxLineSearchFailures = lineSearchFailures
        newton.step = step
        newton.products = products
        newton.blockDiagonal = blockDiagonal
        newton.stragglerCutoff = stragglerCutoff
        var hf = HessianFreeOptions()
        hf.regularization = regularization
        hf.solver = solver
        hf.gradientBatch = gradientBatch?.rows
        hf.curvatureBatch = curvatureBatch
        hf.cgTolerance = cgTolerance
        hf.cgMaxIterations = cgMaxIterations
        hf.step = step
        hf.negativeCurvatureTolerance = negativeCurvatureTolerance
        hf.warmStart = warmStart
        hf.iterateBacktracking = !noBacktracking
        hf.relativeProgressStop = !noRelativeProgress
        hf.diagonalPreconditioner = preconditioner
        var first = FirstOrderOptions()
        first.regularization = regularization
        first.learningRate = learningRate ?? (optimizer == .adam ? 0.001 : 0.01)
        first.momentum = momentum
        first.batchSize = gradientBatch.map { $0.rows ?? Int(Int32.max) } ?? batchSize
        first.beta1 = adamBeta1
        first.beta2 = adamBeta2
        first.epsilon = adamEpsilon
        return TrainingJob(
            network: network, optimizer: optimizer, newton: newton, hessianFree: hf, firstOrder: first, budget: budget, seed: seed)
    }
}

/// The shape of the (embedded) cluster.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Groups of neurons per layer, input first, e.g. 2,2,2,1 (default: one group per layer).", transform: parseIntegerList)
    var partitions: [Int]?
    @Option(help: "Parameter servers.")
    var servers = 2
    @Option(help: "Workers (default: one per core).")
    var workers = ProcessInfoCores.count
    @Option(help: "Rows per shard (fixed; results do not depend on the number of workers).")
    var shardRows = 1000
    @Option(
        help:
            "OpenBLAS threads per BLAS call. OpenBLAS's rounding depends on its thread count, so runs are bit-identical across worker counts at a fixed value."
    )
    var blasThreads = 1

    func grid(for network: NetworkSpec) throws -> PartitionGrid {
        guard let partitions else { return PartitionGrid(unpartitioned: network) }
        return try PartitionGrid(spec: network, partitions: partitions)
    }

    func applyThreads() {
        BLAS.threads = blasThreads
    }
}

enum ProcessInfoCores {
    static var count: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

func parseIntegerList(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard values.count == parts.count, !values.isEmpty else {
        throw ValidationError("'\(text)' is not a comma-separated list of integers")
    }
    return values
}

/// A minibatch size: a row count, or every row.
enum BatchSize: ExpressibleByArgument {
    case full
    case count(Int)

    init?(argument: String) {
        if argument == "full" { self = .full } else if let n = Int(argument), n > 0 { self = .count(n) } else { return nil }
    }

    /// The row count, or nil for every row.
    var rows: Int? {
        if case .count(let n) = self { return n }
        return nil
    }
}

func parseActivations(_ text: String) throws -> [Activation] {
    try text.split(separator: ",").map { part in
        guard let a = Activation(rawValue: part.trimmingCharacters(in: .whitespaces)), a != .linear else {
            throw ValidationError("'\(part)' is not a hidden activation (sigmoid, tanh, relu)")
        }
        return a
    }
}
