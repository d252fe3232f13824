import Foundation
import NewtonCore

/// Everything a trainer needs, beside its job, to continue a run after a
/// completed iteration exactly as if it had never stopped: the weights, the
/// optimiser vectors that carry over between iterations (Hessian-free's
/// previous direction, momentum, Adam's moments) and a few scalars.
///
/// Nothing else is needed for identical iterates: subsamples, minibatch
/// orders and probes are drawn from the seed and the iteration number alone,
/// and every other server vector is written before it is read in an
/// iteration. The gradient at the weights is recomputed on resumption (it
/// is a deterministic function of them).
public struct Checkpoint: Sendable, Equatable {
    /// The scalars of a run after `iteration`.
    public struct State: Sendable, Codable, Equatable {
        /// The last completed iteration.
        public var iteration: Int
        /// Seconds the run had taken by then (time limits count them).
        public var elapsedSeconds: Double
        /// ‖∇f‖ at iteration 0: the gradient tolerance is relative to it.
        public var initialGradientNorm: Double
        /// Levenberg–Marquardt λ for the next iteration (second-order methods).
        public var lambda: Double
        /// Failed line searches in a row so far (second-order methods).
        public var lineSearchFailures: Int
        /// Minibatch steps taken so far (first-order methods: Adam's bias correction).
        public var minibatchSteps: Int

        public init(
            iteration: Int, elapsedSeconds: Double, initialGradientNorm: Double, lambda: Double = 0, lineSearchFailures: Int = 0,
            minibatchSteps: Int = 0
        ) {
            self.iteration = iteration
            self.elapsedSeconds = elapsedSeconds
            self.initialGradientNorm = initialGradientNorm
            self.lambda = lambda
            self.lineSearchFailures = lineSearchFailures
            self.minibatchSteps = minibatchSteps
        }
    }

    public var state: State
    public var weights: DenseParameters
    /// The optimiser's vectors that carry over between iterations, by name.
    public var optimizerVectors: [VectorName: DenseParameters]

    public init(state: State, weights: DenseParameters, optimizerVectors: [VectorName: DenseParameters] = [:]) {
        self.state = state
        self.weights = weights
        self.optimizerVectors = optimizerVectors
    }

    private static let stateKey = "newtonps.checkpoint.state"

    /// The state and the optimiser vectors (not the weights, which are stored
    /// as the job's model) as safetensors bytes, vectors in name order.
    public func encodedOptimizerState() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let state: String
        do { state = String(decoding: try encoder.encode(self.state), as: UTF8.self) } catch {
            throw TrainingError(.invalidCheckpoint, "checkpoint state of iteration \(self.state.iteration) cannot be encoded", cause: error)
        }
        let tensors = optimizerVectors.sorted { $0.key.rawValue < $1.key.rawValue }.map {
            SafetensorsTensor(name: $0.key.rawValue, shape: [$0.value.count], values: $0.value.values)
        }
        return try Safetensors.encode(tensors, metadata: [Self.stateKey: state])
    }

    /// A checkpoint from the weights and bytes written by
    /// `encodedOptimizerState()`; `source` names the bytes in errors.
    public init(weights: DenseParameters, optimizerState bytes: [UInt8], source: String) throws {
        let (tensors, metadata) = try Safetensors.decode(bytes, source: source)
        guard let text = metadata[Self.stateKey] else {
            throw TrainingError(.invalidCheckpoint, "\(source): no '\(Self.stateKey)' in the metadata; not a newtonps checkpoint")
        }
        do { state = try JSONDecoder().decode(State.self, from: Data(text.utf8)) } catch {
            throw TrainingError(.invalidCheckpoint, "\(source): the checkpoint state cannot be read", cause: error)
        }
        var vectors = [VectorName: DenseParameters]()
        for tensor in tensors {
            let name = VectorName(rawValue: tensor.name)
            guard VectorName.known.contains(name), name != .weights else {
                throw TrainingError(.invalidCheckpoint, "\(source): '\(tensor.name)' is not an optimiser vector")
            }
            guard tensor.values.count == weights.count else {
                throw TrainingError(
                    .invalidCheckpoint,
                    "\(source): vector '\(tensor.name)' has \(tensor.values.count) values; the weights have \(weights.count)")
            }
            vectors[name] = try DenseParameters(spec: weights.spec, values: tensor.values)
        }
        self.weights = weights
        self.optimizerVectors = vectors
    }
}

/// When a run records checkpoints and what it does with them.
public struct CheckpointPolicy: Sendable {
    /// A checkpoint after every iteration whose number is a multiple of this (≥ 1).
    public var every: Int
    /// Keeps a checkpoint (e.g. in the driver's job store). A failure here
    /// ends the run.
    public var save: @Sendable (Checkpoint) async throws -> Void

    public init(every: Int, save: @escaping @Sendable (Checkpoint) async throws -> Void) {
        self.every = every
        self.save = save
    }
}
