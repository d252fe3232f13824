/// One block of one weight layer: rows `inputGroup` and columns `outputGroup`
/// of `W^layer`, plus the matching slice of the bias when `inputGroup == 0`.
public struct BlockID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// 1-based weight layer m.
    public var layer: Int
    public var inputGroup: Int
    public var outputGroup: Int

    public init(layer: Int, inputGroup: Int, outputGroup: Int) {
        self.layer = layer
        self.inputGroup = inputGroup
        self.outputGroup = outputGroup
    }

    public static func < (a: BlockID, b: BlockID) -> Bool {
        (a.layer, a.inputGroup, a.outputGroup) < (b.layer, b.inputGroup, b.outputGroup)
    }

    public var description: String { "W\(layer)[\(inputGroup),\(outputGroup)]" }
}

/// How the neurons of every layer are cut into groups, and so how every weight
/// matrix `W^m` is cut into a `P_{m−1} × P_m` grid of blocks.
///
/// Blocks are numbered in one canonical order — layer, then input group, then
/// output group — and every sum over blocks is taken in that order.
public struct PartitionGrid: Sendable, Equatable {
    public let spec: NetworkSpec
    /// For each neuron layer `0…L`, the ranges of neuron indices in each group.
    public let groups: [[Range<Int>]]
    /// Every block in canonical order.
    public let blocks: [BlockID]

    /// At most this many blocks in a grid: every server, worker and the driver
    /// keeps per-block state, so the count is capped before anything is built.
    public static let maxBlocks = 1 << 16

    /// Cuts layer m's `n_m` neurons into `partitions[m]` groups as evenly as
    /// possible (the first groups get one extra neuron when it does not divide).
    public init(spec: NetworkSpec, partitions: [Int]) throws {
        guard partitions.count == spec.layerSizes.count else {
            throw CoreError(
                .invalidArgument,
                "partitions \(partitions) give \(partitions.count) layers of groups but the network \(spec.layerSizes) has \(spec.layerSizes.count) layers of neurons"
            )
        }
        try Self.checkBlockCount(partitions)
        var sizes = [[Int]]()
        for (m, p) in partitions.enumerated() {
            let n = spec.layerSizes[m]
            guard p >= 1, p <= n else {
                throw CoreError(.invalidArgument, "layer \(m) has \(n) neurons and cannot be cut into \(p) groups")
            }
            sizes.append((0..<p).map { n / p + ($0 < n % p ? 1 : 0) })
        }
        try self.init(spec: spec, groupSizes: sizes)
    }

    /// Cuts each layer into groups of exactly the given sizes (for uneven splits).
    public init(spec: NetworkSpec, groupSizes: [[Int]]) throws {
        guard groupSizes.count == spec.layerSizes.count else {
            throw CoreError(.invalidArgument, "group sizes for \(groupSizes.count) layers, network has \(spec.layerSizes.count)")
        }
        try Self.checkBlockCount(groupSizes.map(\.count))
        var groups = [[Range<Int>]]()
        for (m, sizes) in groupSizes.enumerated() {
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }), sizes.reduce(0, +) == spec.layerSizes[m] else {
                throw CoreError(
                    .invalidArgument, "group sizes \(sizes) do not cut layer \(m)'s \(spec.layerSizes[m]) neurons into non-empty groups")
            }
            var start = 0
            groups.append(
                sizes.map { size in
                    defer { start += size }
                    return start..<(start + size)
                })
        }
        var blocks = [BlockID]()
        for m in 1...spec.depth {
            for i in groups[m - 1].indices {
                for j in groups[m].indices { blocks.append(BlockID(layer: m, inputGroup: i, outputGroup: j)) }
            }
        }
        self.spec = spec
        self.groups = groups
        self.blocks = blocks
    }

    /// Throws unless `Σ_m P_{m−1}·P_m ≤ maxBlocks` for groups per layer `counts`.
    private static func checkBlockCount(_ counts: [Int]) throws {
        var total = 0
        for (before, after) in zip(counts, counts.dropFirst()) where before > 0 && after > 0 {
            let (blocks, overflow) = before.multipliedReportingOverflow(by: after)
            total = overflow ? Int.max : total.addingReportingOverflow(blocks).overflow ? Int.max : total + blocks
            guard total <= maxBlocks else {
                throw CoreError(
                    .invalidArgument, "groups per layer \(counts.prefix(8)) make more than \(maxBlocks) blocks (PartitionGrid.maxBlocks)")
            }
        }
    }

    /// A grid with one block per layer.
    public init(unpartitioned spec: NetworkSpec) {
        // One group per layer always fits.
        self.spec = spec
        self.groups = spec.layerSizes.map { [0..<$0] }
        self.blocks = (1...spec.depth).map { BlockID(layer: $0, inputGroup: 0, outputGroup: 0) }
    }

    /// The grid with the fewest cuts whose blocks `servers` owners can share
    /// by parameter count (and so by the FLOPs of every product) with the
    /// largest share at most `tolerance` above an even one. Starting from one
    /// block per layer, each step cuts the layer of neurons (input or hidden;
    /// the output layer stays whole) whose extra group most lowers the largest
    /// share, until the shares are even enough or no cut helps. One server
    /// keeps one block per layer.
    public static func balanced(spec: NetworkSpec, servers: Int, tolerance: Double = 0.1) -> PartitionGrid {
        var grid = PartitionGrid(unpartitioned: spec)
        guard servers > 1 else { return grid }
        var imbalance = grid.ownershipImbalance(servers: servers)
        while imbalance > 1 + tolerance {
            let candidates = (0..<spec.depth).compactMap { m -> (grid: PartitionGrid, imbalance: Double)? in
                var counts = grid.partitionCounts
                counts[m] += 1
                guard let candidate = try? PartitionGrid(spec: spec, partitions: counts) else { return nil }
                return (candidate, candidate.ownershipImbalance(servers: servers))
            }
            guard let best = candidates.min(by: { $0.imbalance < $1.imbalance }), best.imbalance < imbalance else { break }
            (grid, imbalance) = best
        }
        return grid
    }

    /// Gives each block to the least loaded of `servers` (at least one)
    /// owners by parameter count, largest blocks first; ties go to the lowest
    /// owner index.
    public func balancedOwnership(servers: Int) -> [Int] {
        precondition(servers > 0, "blocks need at least one owner")
        var load = [Int](repeating: 0, count: servers)
        var owner = [Int](repeating: 0, count: blocks.count)
        for b in blocks.indices.sorted(by: { parameterCount(blocks[$0]) > parameterCount(blocks[$1]) }) {
            let s = load.indices.min { load[$0] < load[$1] }!
            owner[b] = s
            load[s] += parameterCount(blocks[b])
        }
        return owner
    }

    /// The largest owner's parameters over the mean under `balancedOwnership`:
    /// 1 is an even split.
    public func ownershipImbalance(servers: Int) -> Double {
        var load = [Int](repeating: 0, count: servers)
        for (b, s) in balancedOwnership(servers: servers).enumerated() { load[s] += parameterCount(blocks[b]) }
        return Double(load.max()!) * Double(servers) / Double(load.reduce(0, +))
    }

    /// The groups per layer, input first (the `--partitions` spelling).
    public var partitionCounts: [Int] { groups.map(\.count) }

    public func inputRange(_ b: BlockID) -> Range<Int> { groups[b.layer - 1][b.inputGroup] }
    public func outputRange(_ b: BlockID) -> Range<Int> { groups[b.layer][b.outputGroup] }
    public func hasBias(_ b: BlockID) -> Bool { b.inputGroup == 0 }

    /// Parameters held by block `b`: its weights, then its bias slice if any.
    public func parameterCount(_ b: BlockID) -> Int {
        let cols = outputRange(b).count
        return inputRange(b).count * cols + (hasBias(b) ? cols : 0)
    }

    /// Copies block `b`'s parameters out of the dense form.
    public func extract(_ b: BlockID, from dense: DenseParameters) -> [Float] {
        let rows = inputRange(b)
        let cols = outputRange(b)
        let n = spec.layerSizes[b.layer]
        let w = dense.weightOffsets[b.layer - 1]
        let bias = hasBias(b) ? dense.biasOffsets[b.layer - 1] : nil
        return dense.values.withUnsafeBufferPointer { src in
            [Float](unsafeUninitializedCapacity: parameterCount(b)) { out, count in
                // Row by row: each row of the block is contiguous in both forms.
                for (k, r) in rows.enumerated() {
                    let from = w + r * n + cols.lowerBound
                    _ = out[(k * cols.count)...].initialize(from: src[from..<(from + cols.count)])
                }
                if let bias {
                    _ = out[(rows.count * cols.count)...].initialize(from: src[(bias + cols.lowerBound)..<(bias + cols.upperBound)])
                }
                count = parameterCount(b)
            }
        }
    }

    /// Writes block `b`'s parameters into the dense form.
    public func insert(_ b: BlockID, values: [Float], into dense: inout DenseParameters) throws {
        guard values.count == parameterCount(b) else {
            throw CoreError(.shapeMismatch, "block \(b) holds \(parameterCount(b)) parameters, got \(values.count)")
        }
        let rows = inputRange(b)
        let cols = outputRange(b)
        let n = spec.layerSizes[b.layer]
        let w = dense.weightOffsets[b.layer - 1]
        let bias = dense.biasOffsets[b.layer - 1]
        let withBias = hasBias(b)
        values.withUnsafeBufferPointer { src in
            dense.values.withUnsafeMutableBufferPointer { dst in
                for (k, r) in rows.enumerated() {
                    let to = w + r * n + cols.lowerBound
                    _ = dst[to..<(to + cols.count)].update(fromContentsOf: src[(k * cols.count)..<((k + 1) * cols.count)])
                }
                if withBias {
                    let from = rows.count * cols.count
                    _ = dst[(bias + cols.lowerBound)..<(bias + cols.upperBound)].update(
                        fromContentsOf: src[from..<(from + cols.count)])
                }
            }
        }
    }

    /// Every block's parameters, in canonical order.
    public func split(_ dense: DenseParameters) -> [[Float]] {
        blocks.map { extract($0, from: dense) }
    }

    /// The dense form of per-block values given in canonical order.
    public func assemble(_ blockValues: [[Float]]) throws -> DenseParameters {
        guard blockValues.count == blocks.count else {
            throw CoreError(.shapeMismatch, "grid has \(blocks.count) blocks, got values for \(blockValues.count)")
        }
        var dense = DenseParameters(zeros: spec)
        for (b, values) in zip(blocks, blockValues) { try insert(b, values: values, into: &dense) }
        return dense
    }
}
