/// Where a Krylov solver's vectors live and how its operator applies. The
/// solver holds scalars only (α, β, ω and the dots) and drives the vectors
/// by vector programs, so one solver serves the driver — parameter-sized
/// vectors on the servers (`ServerVectorSpace`) — and a server solving one
/// diagonal block on its own vectors with no exchange.
public protocol KrylovSpace {
    /// Runs `program` over the whole vector; answers each `dot`'s total.
    nonisolated(nonsending) func run(_ program: [VectorOp]) async throws -> [Double]
    /// Runs `prelude` (a solver's pending vector steps, no dots), then
    /// `y = A x` for the solver's operator A (symmetric for CG), then
    /// `program` (which may read `y`); the prelude travels with the
    /// operator's first request and the program with its last where the
    /// operator allows. Answers `program`'s dots.
    nonisolated(nonsending) func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp])
        async throws -> [Double]
    /// Asked before every iteration: true ends the solve with its current
    /// iterate (a straggler told to stop).
    nonisolated(nonsending) func shouldStop() async throws -> Bool
}

extension KrylovSpace {
    /// Puts the first iterate in `.direction` — `start` (a warm start,
    /// already scaled) or 0 — and `A x` in `.product`.
    nonisolated(nonsending) func begin(at start: VectorName?) async throws {
        if let start {
            _ = try await run([.copy(start, to: .direction)])
            _ = try await apply(.direction, into: .product, first: [], then: [])
        } else {
            _ = try await run([.fill(target: .direction, value: 0), .fill(target: .product, value: 0)])
        }
    }
}

/// `y = A x` on server-side vectors: a damped curvature product or, in
/// tests, a matrix.
public protocol LinearOperator: Sendable {
    /// `prelude` (no dots), then `y = A x`, then `program` (which may read
    /// `y`), fused with the operator's own last vector step (the damping)
    /// into one program, so a solver's next dots cost no round trip of
    /// their own; where the operator can, `prelude` rides on its first
    /// request. Answers `program`'s dots.
    func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp]) async throws -> [Double]
}

/// Parameter-sized vectors on the servers, with an operator: the space the
/// driver's solvers work in.
public struct ServerVectorSpace<Operator: LinearOperator>: KrylovSpace {
    public let cluster: ClusterCoordinator
    public let linearOperator: Operator

    public init(cluster: ClusterCoordinator, operator linearOperator: Operator) {
        self.cluster = cluster
        self.linearOperator = linearOperator
    }

    nonisolated(nonsending) public func run(_ program: [VectorOp]) async throws -> [Double] {
        try await cluster.run(program)
    }

    nonisolated(nonsending) public func apply(
        _ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp]
    ) async throws -> [Double] {
        try await linearOperator.apply(x, into: y, first: prelude, then: program)
    }

    nonisolated(nonsending) public func shouldStop() async throws -> Bool { false }
}

/// How a Krylov solve ended.
public struct SolveReport: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        case converged
        case iterationLimit = "iteration-limit"
        /// CG met pᵀAp ≤ ε‖p‖²; the direction is in `.negativeCurvature`.
        case negativeCurvature = "negative-curvature"
        /// The caller's monitor stopped CG (Martens' relative-progress rule).
        case stalledProgress = "relative-progress"
        /// The space asked the solve to stop (a straggler cut off).
        case stopped
        /// BiCG-STAB broke down (a zero inner product).
        case breakdown
    }

    public var iterations: Int
    public var outcome: Outcome
    /// `pᵀAp / ‖p‖²` of the negative-curvature direction, when one was found.
    public var negativeCurvature: Double?

    public init(iterations: Int, outcome: Outcome, negativeCurvature: Double? = nil) {
        self.iterations = iterations
        self.outcome = outcome
        self.negativeCurvature = negativeCurvature
    }
}
