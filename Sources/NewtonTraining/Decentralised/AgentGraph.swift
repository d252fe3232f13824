import NewtonCore

/// An undirected graph over agents `0..<agents`: who may talk to whom in one
/// round of a decentralised method.
public struct AgentGraph: Sendable, Equatable {
    public let agents: Int
    /// Each agent's neighbours, ascending, never itself.
    public let neighbours: [[Int]]

    /// The graph with these edges (each pair once, either order; self-loops
    /// and repeats are ignored).
    public init(agents: Int, edges: some Sequence<(Int, Int)>) {
        var sets = Array(repeating: Set<Int>(), count: agents)
        for (a, b) in edges where a != b {
            sets[a].insert(b)
            sets[b].insert(a)
        }
        self.agents = agents
        self.neighbours = sets.map { $0.sorted() }
    }

    /// Every edge once, as (smaller, larger), ascending.
    public var edges: [(Int, Int)] {
        neighbours.enumerated().flatMap { i, js in js.filter { $0 > i }.map { (i, $0) } }
    }

    public func degree(_ i: Int) -> Int { neighbours[i].count }

    /// The connected components, each ascending, ordered by their first agent.
    public var components: [[Int]] {
        var component = Array(repeating: -1, count: agents)
        var result = [[Int]]()
        for start in 0..<agents where component[start] < 0 {
            var members = [start]
            component[start] = result.count
            var next = 0
            while next < members.count {
                for j in neighbours[members[next]] where component[j] < 0 {
                    component[j] = result.count
                    members.append(j)
                }
                next += 1
            }
            result.append(members.sorted())
        }
        return result
    }

    public var isConnected: Bool { components.count <= 1 }

    /// The union of two graphs over the same agents.
    public func union(_ other: AgentGraph) -> AgentGraph {
        AgentGraph(agents: agents, edges: edges + other.edges)
    }

    /// Metropolis–Hastings mixing weights: `c_ij = 1/(1 + max(d_i, d_j))` on
    /// edges and `c_ii = 1 − Σ_{j≠i} c_ij`; symmetric and doubly stochastic.
    /// Each agent's row lists `(j, c_ij)` with j ascending, itself included.
    public var metropolisWeights: [[(agent: Int, weight: Double)]] {
        (0..<agents).map { i in
            var row = neighbours[i].map { j in (agent: j, weight: 1 / Double(1 + max(degree(i), degree(j)))) }
            let own = 1 - row.reduce(0) { $0 + $1.weight }
            row.append((agent: i, weight: own))
            return row.sorted { $0.agent < $1.agent }
        }
    }
}

/// A fixed graph shape, as users name it: `ring`, `grid`, `star`,
/// `complete`, `erdos-renyi:P` or `exponential`.
public enum GraphTopology: Sendable, Equatable, CustomStringConvertible {
    case ring
    /// A 2-D grid of ⌊√I⌋ rows, filled row by row (the last row may be short).
    case grid
    /// Agent 0 in the middle.
    case star
    case complete
    /// Each edge present with probability p, drawn again until connected.
    case erdosRenyi(Double)
    /// Agent i linked to i ± 2^k (mod I) for every 2^k < I.
    case exponential

    /// Parses a name as users write it; nil when it is none of them.
    public init?(text: String) {
        switch text {
        case "ring": self = .ring
        case "grid": self = .grid
        case "star": self = .star
        case "complete": self = .complete
        case "exponential": self = .exponential
        default:
            let parts = text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0] == "erdos-renyi", let p = Double(parts[1]) else { return nil }
            self = .erdosRenyi(p)
        }
    }

    public var description: String {
        switch self {
        case .ring: return "ring"
        case .grid: return "grid"
        case .star: return "star"
        case .complete: return "complete"
        case .erdosRenyi(let p): return "erdos-renyi:\(p)"
        case .exponential: return "exponential"
        }
    }

    /// What users may write, for messages.
    public static let spelling = "ring, grid, star, complete, erdos-renyi:P (0 < P ≤ 1) or exponential"

    /// Every problem with this shape, as messages.
    public var problems: [String] {
        if case .erdosRenyi(let p) = self, !(p > 0 && p <= 1) { return ["the Erdős–Rényi edge probability must be in (0, 1], got \(p)"] }
        return []
    }

    /// How many draws an Erdős–Rényi graph gets to come out connected.
    public static let maxDraws = 10_000

    /// The graph over `agents` agents; random shapes are drawn from `seed`.
    public func graph(agents: Int, seed: UInt64) throws -> AgentGraph {
        guard agents >= 1 else { throw TrainingError(.invalidOptions, "a graph needs at least one agent, got \(agents)") }
        if let problem = problems.first { throw TrainingError(.invalidOptions, problem) }
        let n = agents
        switch self {
        case .ring:
            return AgentGraph(agents: n, edges: (0..<n).map { ($0, ($0 + 1) % n) })
        case .grid:
            let rows = max(1, Int(Double(n).squareRoot()))
            let columns = (n + rows - 1) / rows
            let edges = (0..<n).flatMap { i -> [(Int, Int)] in
                var e = [(Int, Int)]()
                if (i + 1) % columns != 0, i + 1 < n { e.append((i, i + 1)) }
                if i + columns < n { e.append((i, i + columns)) }
                return e
            }
            return AgentGraph(agents: n, edges: edges)
        case .star:
            return AgentGraph(agents: n, edges: (1..<max(1, n)).map { (0, $0) })
        case .complete:
            return AgentGraph(agents: n, edges: (0..<n).flatMap { i in (i + 1..<n).map { (i, $0) } })
        case .erdosRenyi(let p):
            var rng = SeededGenerator(seed: seed, stream: 7000)
            for _ in 0..<Self.maxDraws {
                let graph = AgentGraph(
                    agents: n, edges: (0..<n).flatMap { i in (i + 1..<n).compactMap { j in rng.nextUnit() < p ? (i, j) : nil } })
                if graph.isConnected { return graph }
            }
            throw TrainingError(
                .invalidOptions,
                "no connected Erdős–Rényi graph of \(n) agents with edge probability \(p) in \(Self.maxDraws) draws; raise the probability")
        case .exponential:
            var edges = [(Int, Int)]()
            var hop = 1
            while hop < n {
                edges += (0..<n).map { ($0, ($0 + hop) % n) }
                hop *= 2
            }
            return AgentGraph(agents: n, edges: edges)
        }
    }
}

/// A graph that changes every round: each edge of a connected base graph is
/// active with probability q, drawn from the seed and the round alone. Any
/// one round's graph may be disconnected; the union over every window of
/// `window` rounds (rounds 1…B, B+1…2B, …) is connected, because the last
/// round of each window adds, where the window's union so far is not
/// connected, the first base edge joining two of its components, until it is.
public struct TimeVaryingGraph: Sendable, Equatable {
    /// The probability that a base edge is active in a round.
    public var activation: Double
    /// B: the union over every B consecutive rounds of a window is connected.
    public var window: Int

    public init(activation: Double, window: Int) {
        self.activation = activation
        self.window = window
    }

    /// Parses `Q` or `Q:B` (B defaults to 4); nil when malformed.
    public init?(text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let q = Double(parts[0]) else { return nil }
        let window = parts.count == 2 ? Int(parts[1]) : 4
        guard let window else { return nil }
        self.init(activation: q, window: window)
    }

    public var text: String { "\(activation):\(window)" }

    /// The longest window: the last round of a window draws every round of
    /// it again, so a longer one would cost more than a run's rounds.
    public static let maxWindow = 10_000

    public var problems: [String] {
        var p = [String]()
        if !(activation > 0 && activation <= 1) { p.append("the edge activation probability must be in (0, 1], got \(activation)") }
        if !(1...Self.maxWindow).contains(window) {
            p.append("the connectivity window must be 1 to \(Self.maxWindow) rounds, got \(window)")
        }
        return p
    }

    /// Round `round`'s graph (rounds count from 1) over the connected `base`.
    public func graph(round: Int, base: AgentGraph, seed: UInt64) -> AgentGraph {
        // Counted so that no round up to Int.max overflows.
        let position = (round - 1) % window
        let windowStart = round - position
        var graph = drawn(round: round, base: base, seed: seed)
        guard position == window - 1 else { return graph }
        var union = (windowStart..<round).reduce(graph) { $0.union(drawn(round: $1, base: base, seed: seed)) }
        while !union.isConnected {
            let component = Dictionary(
                uniqueKeysWithValues: union.components.enumerated().flatMap { c, members in members.map { ($0, c) } })
            guard let bridge = base.edges.first(where: { component[$0.0] != component[$0.1] }) else { break }
            graph = graph.union(AgentGraph(agents: base.agents, edges: [bridge]))
            union = union.union(graph)
        }
        return graph
    }

    private func drawn(round: Int, base: AgentGraph, seed: UInt64) -> AgentGraph {
        var rng = SeededGenerator(seed: seed, stream: 8000 + UInt64(round))
        return AgentGraph(agents: base.agents, edges: base.edges.filter { _ in rng.nextUnit() < activation })
    }
}

/// The graph of every round of a run: a fixed topology, or, when
/// `timeVarying` is set, a fresh draw of its edges each round.
public struct GraphSchedule: Sendable, Equatable {
    public let base: AgentGraph
    public let timeVarying: TimeVaryingGraph?
    public let seed: UInt64

    public init(topology: GraphTopology, agents: Int, timeVarying: TimeVaryingGraph?, seed: UInt64) throws {
        if let problem = timeVarying?.problems.first { throw TrainingError(.invalidOptions, problem) }
        self.base = try topology.graph(agents: agents, seed: seed)
        self.timeVarying = timeVarying
        self.seed = seed
    }

    /// The graph of round `round` (from 1).
    public func graph(round: Int) -> AgentGraph {
        timeVarying?.graph(round: round, base: base, seed: seed) ?? base
    }
}
