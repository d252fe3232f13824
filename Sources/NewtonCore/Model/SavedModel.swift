/// A trained network as a file: weights and biases, the class names, and
/// the feature scaler fitted on the training data, stored as safetensors so
/// PyTorch (`safetensors.torch.load_file`) can read it.
///
/// Tensor names follow a PyTorch module with `self.layers = nn.ModuleList(
/// [nn.Linear(n_0, n_1), …])`: `layers.{m−1}.weight` is `[n_m, n_{m−1}]`
/// (PyTorch's out × in) and `layers.{m−1}.bias` is `[n_m]`. The scaler is
/// `scaler.offset` and `scaler.factor` (`x' = (x − offset) · factor`).
public struct SavedModel: Sendable, Equatable {
    public var parameters: DenseParameters
    public var classNames: [String]
    public var scaler: FeatureScaler

    /// A model; outputs beyond the named classes (a network may have more
    /// outputs than its training data has classes) are named `class-k`.
    public init(parameters: DenseParameters, classNames: [String], scaler: FeatureScaler) {
        self.parameters = parameters
        let outputs = parameters.spec.classes
        self.classNames = Array(classNames.prefix(outputs)) + (min(classNames.count, outputs)..<outputs).map { "class-\($0)" }
        self.scaler = scaler
    }

    public var spec: NetworkSpec { parameters.spec }

    static let formatTag = "newtonps-mlp-v1"

    /// Writes the model (atomically: an existing file is replaced whole or not at all).
    public func save(to path: String) throws {
        try Safetensors.write(tensors, metadata: metadata, to: path)
    }

    /// The model as safetensors bytes.
    public func encoded() throws -> [UInt8] {
        try Safetensors.encode(tensors, metadata: metadata)
    }

    /// Reads a model written by `save`, checking every shape against the metadata.
    public static func load(from path: String) throws -> SavedModel {
        let (tensors, metadata) = try Safetensors.read(from: path)
        return try SavedModel(tensors: tensors, metadata: metadata, source: path)
    }

    /// Decodes safetensors bytes from `source` (named in errors).
    public static func decode(_ bytes: [UInt8], source: String) throws -> SavedModel {
        let (tensors, metadata) = try Safetensors.decode(bytes, source: source)
        return try SavedModel(tensors: tensors, metadata: metadata, source: source)
    }

    private init(tensors: [SafetensorsTensor], metadata: [String: String], source path: String) throws {
        func fail(_ what: String) -> CoreError { CoreError(.malformedData, "\(path): \(what)") }
        guard metadata["format"] == Self.formatTag else {
            throw fail(
                "not a newtonps model (metadata format is \(metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(Self.formatTag)')"
            )
        }
        guard let layerText = metadata["layers"], let lossText = metadata["loss"], let loss = Loss(rawValue: lossText),
            let scalingText = metadata["scaling"], let scaling = FeatureScaling(rawValue: scalingText)
        else {
            throw fail("metadata needs 'layers', a known 'loss' and a known 'scaling'")
        }
        let layerParts = layerText.split(separator: ",")
        let activationParts = (metadata["activations"] ?? "").split(separator: ",")
        let layers = layerParts.compactMap { Int($0) }
        let activations = activationParts.compactMap { Activation(rawValue: String($0)) }
        guard layers.count == layerParts.count, activations.count == activationParts.count,
            activations.count == max(0, layers.count - 2)
        else {
            throw fail("metadata layers '\(layerText)' and activations '\(metadata["activations"] ?? "")' do not describe a network")
        }
        let spec: NetworkSpec
        do { spec = try NetworkSpec(layerSizes: layers, activations: activations, loss: loss) } catch {
            throw CoreError(.malformedData, "\(path): metadata describes no valid network", cause: error)
        }
        let classNames = Self.decodeNames(metadata["classes"] ?? "")
        guard classNames.count == spec.classes else {
            throw fail("metadata names \(classNames.count) classes for \(spec.classes) outputs")
        }
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let t = byName[name] else { throw fail("tensor '\(name)' is missing") }
            guard t.shape == shape else { throw fail("tensor '\(name)' has shape \(t.shape), expected \(shape)") }
            return t.values
        }
        var parameters = DenseParameters(zeros: spec)
        for m in 1...spec.depth {
            let nIn = spec.layerSizes[m - 1]
            let nOut = spec.layerSizes[m]
            let transposed = try tensor("layers.\(m - 1).weight", [nOut, nIn])
            let w = parameters.weightOffsets[m - 1]
            for r in 0..<nIn { for c in 0..<nOut { parameters.values[w + r * nOut + c] = transposed[c * nIn + r] } }
            parameters.values.replaceSubrange(parameters.biasRange(layer: m), with: try tensor("layers.\(m - 1).bias", [nOut]))
        }
        let scaler = FeatureScaler(
            scaling: scaling,
            offsets: try tensor("scaler.offset", [spec.inputs]),
            factors: try tensor("scaler.factor", [spec.inputs]))
        self.init(parameters: parameters, classNames: classNames, scaler: scaler)
    }

    private var tensors: [SafetensorsTensor] {
        var out = [SafetensorsTensor]()
        for m in 1...spec.depth {
            let nIn = spec.layerSizes[m - 1]
            let nOut = spec.layerSizes[m]
            let w = parameters.weightOffsets[m - 1]
            var transposed = [Float](repeating: 0, count: nIn * nOut)
            for r in 0..<nIn { for c in 0..<nOut { transposed[c * nIn + r] = parameters.values[w + r * nOut + c] } }
            out.append(SafetensorsTensor(name: "layers.\(m - 1).weight", shape: [nOut, nIn], values: transposed))
            out.append(
                SafetensorsTensor(
                    name: "layers.\(m - 1).bias", shape: [nOut], values: Array(parameters.values[parameters.biasRange(layer: m)])))
        }
        out.append(SafetensorsTensor(name: "scaler.offset", shape: [spec.inputs], values: scaler.offsets))
        out.append(SafetensorsTensor(name: "scaler.factor", shape: [spec.inputs], values: scaler.factors))
        return out
    }

    private var metadata: [String: String] {
        [
            "format": Self.formatTag,
            "layers": spec.layerSizes.map(String.init).joined(separator: ","),
            "activations": spec.hiddenActivations.map(\.rawValue).joined(separator: ","),
            "loss": spec.loss.rawValue,
            "scaling": scaler.scaling.rawValue,
            "classes": Self.encodeNames(classNames),
        ]
    }

    /// Class names joined by newlines, with `\` and newlines escaped.
    static func encodeNames(_ names: [String]) -> String {
        names.map { $0.replacingOccurrences("\\", "\\\\").replacingOccurrences("\n", "\\n") }.joined(separator: "\n")
    }

    static func decodeNames(_ text: String) -> [String] {
        guard !text.isEmpty else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var out = ""
            var escaped = false
            for ch in line {
                if escaped {
                    out.append(ch == "n" ? "\n" : ch)
                    escaped = false
                } else if ch == "\\" {
                    escaped = true
                } else {
                    out.append(ch)
                }
            }
            return out
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
