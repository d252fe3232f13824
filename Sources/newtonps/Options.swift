import ArgumentParser
import Foundation
import NewtonCore
import NewtonDriver
import NewtonTraining

extension DataFormat: ExpressibleByArgument {}
extension ProductsMode: ExpressibleByArgument {}

// `train`'s job settings. Each property is a job-spec key (`cgTolerance` is
// the flag `--cg-tolerance` and the key `cg_tolerance`) whose help, default,
// validation and meaning come from `JobSpec`'s one table: the flags only
// carry text, and `JobSpec.parse(arguments:)` reads it exactly as it reads
// the same keys in a submitted YAML spec.

extension ArgumentHelp {
    /// The job-spec table's help for `key`.
    static func key(_ key: String) -> ArgumentHelp { ArgumentHelp(JobSpec.help(for: key)) }
}

/// Where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: .key("train")) var train: String?
    @Option(help: .key("test")) var test: String?
    @Flag(help: .key("no_test")) var noTest = false
    @Option(help: .key("format")) var format: String?
    @Option(help: .key("label_column")) var labelColumn: String?
    @Option(help: .key("csv_header")) var csvHeader: String?
    @Option(help: .key("scaling")) var scaling: String?
}

/// The network.
struct ModelOptions: ParsableArguments {
    @Option(help: .key("layers")) var layers: String?
    @Option(help: .key("activation")) var activation: String?
    @Option(help: .key("loss")) var loss: String?
}

/// The optimiser and every knob of it.
struct OptimizerOptions: ParsableArguments {
    @Option(help: .key("optimizer")) var optimizer: String?
    // `-C` as LIBLINEAR and simpleNN users type it, and `--C`.
    @Option(name: [.customLong("C"), .customShort("C")], help: .key("C")) var C: String?
    @Option(help: .key("subsample")) var subsample: String?
    @Option(help: .key("gradient_sample")) var gradientSample: String?
    @Option(help: .key("gradient_sample_growth")) var gradientSampleGrowth: String?
    @Option(help: .key("cg_tolerance")) var cgTolerance: String?
    @Option(help: .key("cg_max_iterations")) var cgMaxIterations: String?
    @Option(help: .key("lambda")) var lambda: String?
    @Option(help: .key("lambda_increase")) var lambdaIncrease: String?
    @Option(help: .key("lambda_decrease")) var lambdaDecrease: String?
    @Option(help: .key("armijo")) var armijo: String?
    @Option(help: .key("line_search_steps")) var lineSearchSteps: String?
    @Option(help: .key("line_search_failures")) var lineSearchFailures: String?
    @Option(help: .key("products")) var products: String?
    @Flag(help: .key("block_diagonal")) var blockDiagonal = false
    @Option(help: .key("straggler_cutoff")) var stragglerCutoff: String?
    @Option(help: .key("solver")) var solver: String?
    @Option(help: .key("gradient_batch")) var gradientBatch: String?
    @Option(help: .key("curvature_batch")) var curvatureBatch: String?
    @Option(help: .key("warm_start")) var warmStart: String?
    @Flag(inversion: .prefixedNo, help: .key("backtracking")) var backtracking: Bool?
    @Flag(inversion: .prefixedNo, help: .key("relative_progress")) var relativeProgress: Bool?
    @Flag(help: .key("preconditioner")) var preconditioner = false
    @Option(help: .key("negative_curvature_tolerance")) var negativeCurvatureTolerance: String?
    @Option(help: .key("negative_curvature_step")) var negativeCurvatureStep: String?
    @Flag(help: .key("curvature_diagnostics")) var curvatureDiagnostics = false
    @Option(help: .key("learning_rate")) var learningRate: String?
    @Option(help: .key("momentum")) var momentum: String?
    @Option(help: .key("batch_size")) var batchSize: String?
    @Option(help: .key("adam_beta1")) var adamBeta1: String?
    @Option(help: .key("adam_beta2")) var adamBeta2: String?
    @Option(help: .key("adam_epsilon")) var adamEpsilon: String?
}

/// The agents of a decentralised run (next, dgd) and their graph.
struct AgentOptions: ParsableArguments {
    @Option(help: .key("agents")) var agents: String?
    @Option(help: .key("graph")) var graph: String?
    @Option(help: .key("time_varying")) var timeVarying: String?
    @Option(help: .key("surrogate")) var surrogate: String?
    @Option(help: .key("tau")) var tau: String?
    @Option(help: .key("regularizer")) var regularizer: String?
    @Option(help: .key("l1")) var l1: String?
    @Option(help: .key("step_size")) var stepSize: String?
    @Option(help: .key("step_decay")) var stepDecay: String?
}

/// The shape of the (embedded) cluster.
struct ClusterOptions: ParsableArguments {
    @Option(help: .key("partitions")) var partitions: String?
    @Option(help: .key("servers")) var servers: String?
    @Option(help: .key("workers")) var workers: String?
    @Option(help: .key("shard_rows")) var shardRows: String?
}

/// How long the run goes on, and its seed.
struct RunOptions: ParsableArguments {
    @Option(help: .key("max_iterations")) var maxIterations: String?
    @Option(help: .key("time_limit")) var timeLimit: String?
    @Option(help: .key("gradient_tolerance")) var gradientTolerance: String?
    @Option(help: .key("checkpoint_every")) var checkpointEvery: String?
    @Option(help: .key("seed")) var seed: String?
    @Option(help: .key("name")) var name: String?
}

extension ParsableArguments {
    /// The job-spec settings given on the command line: each property's key
    /// (its name in snake case) with the text typed; a flag given is "true",
    /// its `--no-` form "false"; settings not given are left out.
    var jobArguments: [(key: String, value: String)] {
        Mirror(reflecting: self).children.compactMap { child in
            guard let label = child.label else { return nil }
            let key = snakeCase(label.hasPrefix("_") ? String(label.dropFirst()) : label)
            switch child.value {
            case let option as Option<String?>: return option.wrappedValue.map { (key, $0) }
            case let flag as Flag<Bool>: return flag.wrappedValue ? (key, "true") : nil
            case let flag as Flag<Bool?>: return flag.wrappedValue.map { (key, $0 ? "true" : "false") }
            default: return nil
            }
        }
    }
}

/// `cgMaxIterations` → `cg_max_iterations` (`C` stays `C`).
func snakeCase(_ name: String) -> String {
    guard name.count > 1 else { return name }
    return name.reduce(into: "") { out, c in
        if c.isUppercase {
            out += "_" + c.lowercased()
        } else {
            out.append(c)
        }
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
