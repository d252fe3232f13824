/// The decentralised methods: every agent holds its own training rows and a
/// full copy of the weights, and talks only to its neighbours.
public enum DecentralisedMethod: String, Sendable, CaseIterable, Codable {
    /// NEXT (Di Lorenzo & Scutari 2016), as Scardapane & Di Lorenzo (2017)
    /// train networks with it: a local convex surrogate step, consensus on
    /// the weights, and gradient tracking.
    case next
    /// Decentralised gradient descent, `wᵢ ← Σⱼ cᵢⱼ wⱼ − η ∇fᵢ(wᵢ)`.
    case dgd
}

/// NEXT's strongly convex surrogate of an agent's loss gᵢ around wᵢ.
public enum Surrogate: String, Sendable, CaseIterable, Codable {
    /// gᵢ linearised at wᵢ plus (τ/2)‖w − wᵢ‖²: a closed-form step.
    case linear
    /// The Gauss-Newton model of gᵢ (the network linearised inside the loss)
    /// plus (τ/2)‖w − wᵢ‖², solved by the project's CG on the agent's workers.
    case gaussNewton = "gauss-newton"
}

/// The regulariser r(w) of the social objective U(w) = Σᵢ gᵢ(w) + r(w).
public enum Regularizer: String, Sendable, CaseIterable, Codable {
    /// r = ‖w‖²/(2·C·l): U is then exactly the centralised trainers' f.
    case l2
    /// r = λ‖w‖₁ (C is not used).
    case l1
}

/// The knobs of NEXT and DGD, with the paper's defaults.
public struct DecentralisedOptions: Sendable, Equatable {
    /// I, the number of agents.
    public var agents = 8
    public var topology = GraphTopology.erdosRenyi(0.3)
    /// A fresh draw of the topology's edges every round; nil for a fixed graph.
    public var timeVarying: TimeVaryingGraph?
    public var surrogate = Surrogate.linear
    /// τ of the proximal term, the same for every agent; nil for each
    /// agent's own, from its curvature at the start (see `DecentralisedTrainer`).
    public var tau: Double?
    public var regularizer = Regularizer.l2
    /// λ of r = λ‖w‖₁.
    public var l1Strength = 1e-4
    /// α⁰ of the step-size rule α[n] = α[n−1](1 − ε·α[n−1]).
    public var initialStep = 0.1
    /// ε of the step-size rule.
    public var stepDecay = 0.01

    public init() {}

    /// The most agents a run may have: graphs and mixing weights grow as I².
    public static let maxAgents = 1024

    /// Every problem with these options, as messages naming the option.
    public var problems: [String] {
        var p = topology.problems + (timeVarying?.problems ?? [])
        if !(1...Self.maxAgents).contains(agents) {
            p.append("a decentralised run needs 1 to \(Self.maxAgents) agents (maxAgents), got \(agents)")
        }
        if let tau, !(tau > 0 && tau.isFinite) { p.append("tau must be positive, got \(tau)") }
        if !(l1Strength > 0 && l1Strength.isFinite) { p.append("the l1 strength must be positive, got \(l1Strength)") }
        if !(initialStep > 0 && initialStep <= 1) { p.append("the initial step α⁰ must be in (0, 1], got \(initialStep)") }
        if !(stepDecay >= 0 && stepDecay * initialStep < 1) {
            p.append("the step decay ε must be non-negative with ε·α⁰ < 1, got ε = \(stepDecay), α⁰ = \(initialStep)")
        }
        if surrogate == .gaussNewton && regularizer == .l1 {
            p.append(
                "the gauss-newton surrogate does not take the l1 regulariser (its local step would need a proximal inner solver); use the linear surrogate with l1"
            )
        }
        return p
    }
}
