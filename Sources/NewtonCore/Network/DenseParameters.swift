/// All weights and biases of a network in one flat buffer, layer by layer:
/// `W¹` (`n_0 × n_1`, row-major), `b¹` (`n_1`), `W²`, `b²`, …
///
/// This is the form workers compute with; servers hold the same numbers cut
/// into blocks (see `PartitionGrid`).
public struct DenseParameters: Sendable, Equatable {
    public let spec: NetworkSpec
    public var values: [Float]

    /// Offsets of `W^m` and `b^m` in `values`, indexed by `m − 1`.
    public let weightOffsets: [Int]
    public let biasOffsets: [Int]

    /// All-zero parameters for `spec`.
    public init(zeros spec: NetworkSpec) {
        var weightOffsets = [Int]()
        var biasOffsets = [Int]()
        var offset = 0
        for m in 1...spec.depth {
            weightOffsets.append(offset)
            offset += spec.layerSizes[m - 1] * spec.layerSizes[m]
            biasOffsets.append(offset)
            offset += spec.layerSizes[m]
        }
        self.spec = spec
        self.values = Array(repeating: 0, count: offset)
        self.weightOffsets = weightOffsets
        self.biasOffsets = biasOffsets
    }

    /// Parameters with the given flat values.
    public init(spec: NetworkSpec, values: [Float]) throws {
        self.init(zeros: spec)
        guard values.count == self.values.count else {
            throw CoreError(.shapeMismatch, "network \(spec.layerSizes) has \(self.values.count) parameters, got \(values.count)")
        }
        self.values = values
    }

    /// He-normal initialisation: `W^m ~ N(0, 2/n_{m−1})`, biases zero. The
    /// draws depend only on the seed and the layer sizes, never on the grid.
    public init(heNormal spec: NetworkSpec, seed: UInt64) {
        self.init(zeros: spec)
        var rng = SeededGenerator(seed: seed, stream: 1)
        for m in 1...spec.depth {
            let fanIn = spec.layerSizes[m - 1]
            let std = (2.0 / Double(fanIn)).squareRoot()
            let start = weightOffsets[m - 1]
            for i in start..<(start + fanIn * spec.layerSizes[m]) {
                values[i] = Float(rng.nextGaussian() * std)
            }
        }
    }

    public var count: Int { values.count }

    /// The range of `W^m` (1-based layer) in `values`.
    public func weightRange(layer m: Int) -> Range<Int> {
        weightOffsets[m - 1]..<(weightOffsets[m - 1] + spec.layerSizes[m - 1] * spec.layerSizes[m])
    }

    /// The range of `b^m` (1-based layer) in `values`.
    public func biasRange(layer m: Int) -> Range<Int> {
        biasOffsets[m - 1]..<(biasOffsets[m - 1] + spec.layerSizes[m])
    }
}
