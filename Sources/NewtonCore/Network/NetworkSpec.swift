/// The shape of a fully connected network: neurons per layer (input first),
/// the activation of each hidden layer (the output layer is linear) and the
/// loss.
public struct NetworkSpec: Sendable, Equatable, Codable {
    /// `n_0, n_1, …, n_L`: input features, hidden widths, classes.
    public var layerSizes: [Int]
    /// One activation per hidden layer (`layerSizes.count − 2` of them).
    public var hiddenActivations: [Activation]
    public var loss: Loss

    /// Builds a spec; a single activation given for several hidden layers is
    /// used for all of them.
    public init(layerSizes: [Int], activations: [Activation], loss: Loss) throws {
        guard layerSizes.count >= 2 else {
            throw CoreError(.invalidArgument, "a network needs at least an input and an output layer, got layers \(layerSizes)")
        }
        if let bad = layerSizes.firstIndex(where: { $0 <= 0 }) {
            throw CoreError(
                .invalidArgument, "layer \(bad) of \(layerSizes) has \(layerSizes[bad]) neurons; every layer needs at least one")
        }
        guard layerSizes.last! >= 2 else {
            throw CoreError(.invalidArgument, "the output layer must have one neuron per class (at least 2), got \(layerSizes.last!)")
        }
        let hidden = layerSizes.count - 2
        var resolved = activations
        if activations.count == 1 && hidden > 1 { resolved = Array(repeating: activations[0], count: hidden) }
        if hidden == 0 && activations.count <= 1 { resolved = [] }
        guard resolved.count == hidden else {
            throw CoreError(.invalidArgument, "\(activations.count) activations given for \(hidden) hidden layers")
        }
        if resolved.contains(.linear) {
            throw CoreError(.invalidArgument, "hidden layers take sigmoid, tanh or relu; linear is reserved for the output layer")
        }
        self.layerSizes = layerSizes
        self.hiddenActivations = resolved
        self.loss = loss
    }

    /// L, the number of weight layers.
    public var depth: Int { layerSizes.count - 1 }
    public var inputs: Int { layerSizes[0] }
    public var classes: Int { layerSizes[depth] }

    /// The activation applied after weight layer `m` (1-based).
    public func activation(ofLayer m: Int) -> Activation {
        m == depth ? .linear : hiddenActivations[m - 1]
    }

}
