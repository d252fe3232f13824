import NewtonCore

/// Small random networks and data for checking kernels against references.
struct KernelFixture {
    let spec: NetworkSpec
    let parameters: DenseParameters
    let inputs: [Float]
    let labels: [Int32]
    let rows: Int

    init(layers: [Int] = [5, 7, 6, 4], activation: Activation = .tanh, loss: Loss = .crossEntropy, rows: Int = 9, seed: UInt64 = 7) throws {
        spec = try NetworkSpec(layerSizes: layers, activations: [activation], loss: loss)
        var params = DenseParameters(heNormal: spec, seed: seed)
        var rng = SeededGenerator(seed: seed, stream: 99)
        // Non-zero biases so every bias path is exercised.
        for m in 1...spec.depth {
            for i in params.biasRange(layer: m) { params.values[i] = Float(rng.nextGaussian() * 0.3) }
        }
        parameters = params
        self.rows = rows
        inputs = (0..<(rows * layers[0])).map { _ in Float(rng.nextGaussian()) }
        labels = (0..<rows).map { _ in Int32(rng.next() % UInt64(layers.last!)) }
    }

    var kernels: RowKernels { RowKernels(parameters: parameters) }

    func randomDirection(seed: UInt64) -> DenseParameters {
        var v = DenseParameters(zeros: spec)
        var rng = SeededGenerator(seed: seed)
        for i in v.values.indices { v.values[i] = Float(rng.nextGaussian()) }
        return v
    }

    func randomOutputs(seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<(rows * spec.classes)).map { _ in Float(rng.nextGaussian()) }
    }

    /// Loss at `parameters + h·v`, evaluated in float32 like the kernels.
    func loss(along v: DenseParameters, step h: Float) -> Double {
        var shifted = parameters
        for i in shifted.values.indices { shifted.values[i] += h * v.values[i] }
        let k = RowKernels(parameters: shifted)
        return k.loss(k.forward(inputs: inputs, rows: rows), labels: labels)
    }

    func outputs(along v: DenseParameters, step h: Float) -> [Float] {
        var shifted = parameters
        for i in shifted.values.indices { shifted.values[i] += h * v.values[i] }
        return RowKernels(parameters: shifted).forward(inputs: inputs, rows: rows).outputs
    }
}

func dot(_ a: [Float], _ b: [Float]) -> Double { VectorMath.dot(a, b) }

func relativeError(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(a), abs(b), 1e-12) }

func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Double {
    let scale = max(a.map { abs(Double($0)) }.max() ?? 0, 1e-12)
    return zip(a, b).map { abs(Double($0) - Double($1)) }.max().map { $0 / scale } ?? 0
}
