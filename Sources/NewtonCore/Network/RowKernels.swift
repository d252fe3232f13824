/// The activations of a forward pass over a batch of rows: `Z^0` (the inputs)
/// through `Z^L` (the linear outputs), each `rows × n_m`, row-major.
public struct ForwardPass: Sendable {
    public let rows: Int
    public var activations: [[Float]]

    /// `Z^L`, `rows × n_L`.
    public var outputs: [Float] { activations[activations.count - 1] }
}

/// The math a **worker** does on its rows, with the full (pulled) weights:
/// forward pass, loss and gradient, the R-operator forward pass `Jv`, the
/// transpose `Jᵀu`, the Gauss-Newton product `JᵀBJv`, and the per-sample
/// Jacobian slices `∂z^L/∂S^m` a block owner caches.
///
/// Every product returns a plain sum over the given rows; averaging and the
/// regulariser belong to the caller. Shapes follow the formulas:
/// `S^m = Z^{m−1} W^m + 1 b^mᵀ`, `Z^m = σ_m(S^m)`.
public struct RowKernels: Sendable {
    public let parameters: DenseParameters
    public var spec: NetworkSpec { parameters.spec }

    public init(parameters: DenseParameters) {
        self.parameters = parameters
    }

    /// Runs the network on `rows` rows of `inputs` (`rows × n_0`).
    public func forward(inputs: [Float], rows: Int) -> ForwardPass {
        precondition(inputs.count == rows * spec.inputs, "inputs of \(inputs.count) values for \(rows) rows of \(spec.inputs)")
        var activations = [inputs]
        activations.reserveCapacity(spec.depth + 1)
        parameters.values.withUnsafeBufferPointer { theta in
            for m in 1...spec.depth {
                let nIn = spec.layerSizes[m - 1], nOut = spec.layerSizes[m]
                var s = [Float](unsafeUninitializedCapacity: rows * nOut) { buffer, count in
                    let bias = theta.baseAddress! + parameters.biasOffsets[m - 1]
                    for r in 0..<rows { (buffer.baseAddress! + r * nOut).update(from: bias, count: nOut) }
                    count = rows * nOut
                }
                activations[m - 1].withUnsafeBufferPointer { z in
                    s.withUnsafeMutableBufferPointer { sp in
                        BLAS.gemm(m: rows, n: nOut, k: nIn,
                                  z.baseAddress!, lda: nIn,
                                  theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                                  beta: 1, sp.baseAddress!, ldc: nOut)
                        spec.activation(ofLayer: m).apply(sp)
                    }
                }
                activations.append(s)
            }
        }
        return ForwardPass(rows: rows, activations: activations)
    }

    /// Σ_r ξ(z_r, y_r) and its gradient with respect to every parameter.
    public func lossAndGradient(_ pass: ForwardPass, labels: [Int32]) -> (loss: Double, gradient: DenseParameters) {
        let classes = spec.classes
        var outputGradient = [Float](repeating: 0, count: pass.rows * classes)
        let loss = pass.outputs.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                outputGradient.withUnsafeMutableBufferPointer { g in
                    spec.loss.gradient(outputs: z, labels: y, classes: classes, into: g)
                }
                return spec.loss.value(outputs: z, labels: y, classes: classes)
            }
        }
        return (loss, backward(pass, outputGradient: outputGradient))
    }

    /// `Jᵀu` summed over rows: back-propagates `u` (`rows × n_L`, the
    /// gradient with respect to `z^L`) to every weight and bias.
    public func backward(_ pass: ForwardPass, outputGradient u: [Float]) -> DenseParameters {
        precondition(u.count == pass.rows * spec.classes)
        var gradient = DenseParameters(zeros: spec)
        var delta = u
        let rows = pass.rows
        parameters.values.withUnsafeBufferPointer { theta in
            gradient.values.withUnsafeMutableBufferPointer { g in
                for m in stride(from: spec.depth, through: 1, by: -1) {
                    let nIn = spec.layerSizes[m - 1], nOut = spec.layerSizes[m]
                    pass.activations[m - 1].withUnsafeBufferPointer { z in
                        delta.withUnsafeBufferPointer { d in
                            // ∂/∂W^m = Z^{m−1}ᵀ Δ^m,  ∂/∂b^m = 1ᵀ Δ^m
                            BLAS.gemm(transposeA: true, m: nIn, n: nOut, k: rows,
                                      z.baseAddress!, lda: nIn, d.baseAddress!, ldb: nOut,
                                      g.baseAddress! + parameters.weightOffsets[m - 1], ldc: nOut)
                            columnSums(d, rows: rows, columns: nOut, into: g.baseAddress! + parameters.biasOffsets[m - 1])
                        }
                    }
                    if m > 1 {
                        // Δ^{m−1} = (Δ^m W^mᵀ) ⊙ σ'(S^{m−1})
                        var previous = uninitialized(rows * nIn)
                        delta.withUnsafeBufferPointer { d in
                            previous.withUnsafeMutableBufferPointer { p in
                                BLAS.gemm(transposeB: true, m: rows, n: nIn, k: nOut,
                                          d.baseAddress!, lda: nOut,
                                          theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                                          p.baseAddress!, ldc: nIn)
                                pass.activations[m - 1].withUnsafeBufferPointer { z in
                                    spec.activation(ofLayer: m - 1).multiplyByDerivative(p, output: z)
                                }
                            }
                        }
                        delta = previous
                    }
                }
            }
        }
        return gradient
    }

    /// The R-operator forward pass: `Jv` (`rows × n_L`), the change of the
    /// outputs along direction `v`. Also returns `R{Z^m}` for every layer.
    public func jacobianProduct(_ pass: ForwardPass, direction v: DenseParameters) -> (product: [Float], rActivations: [[Float]]) {
        let rows = pass.rows
        // R{Z^0} = 0: the inputs do not depend on θ, so layer 1 skips that term.
        var rActivations: [[Float]] = [[]]
        parameters.values.withUnsafeBufferPointer { theta in
            v.values.withUnsafeBufferPointer { vp in
                for m in 1...spec.depth {
                    let nIn = spec.layerSizes[m - 1], nOut = spec.layerSizes[m]
                    // R{S^m} = R{Z^{m−1}} W^m + Z^{m−1} V^m + 1 v_b^mᵀ
                    var rs = [Float](unsafeUninitializedCapacity: rows * nOut) { buffer, count in
                        let bias = vp.baseAddress! + v.biasOffsets[m - 1]
                        for r in 0..<rows { (buffer.baseAddress! + r * nOut).update(from: bias, count: nOut) }
                        count = rows * nOut
                    }
                    rs.withUnsafeMutableBufferPointer { out in
                        pass.activations[m - 1].withUnsafeBufferPointer { z in
                            BLAS.gemm(m: rows, n: nOut, k: nIn, z.baseAddress!, lda: nIn,
                                      vp.baseAddress! + v.weightOffsets[m - 1], ldb: nOut,
                                      beta: 1, out.baseAddress!, ldc: nOut)
                        }
                        if m > 1 {
                            rActivations[m - 1].withUnsafeBufferPointer { rz in
                                BLAS.gemm(m: rows, n: nOut, k: nIn, rz.baseAddress!, lda: nIn,
                                          theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                                          beta: 1, out.baseAddress!, ldc: nOut)
                            }
                        }
                        // R{Z^m} = σ'(S^m) ⊙ R{S^m}
                        pass.activations[m].withUnsafeBufferPointer { z in
                            spec.activation(ofLayer: m).multiplyByDerivative(out, output: z)
                        }
                    }
                    rActivations.append(rs)
                }
            }
        }
        return (rActivations[spec.depth], rActivations)
    }

    /// The Gauss-Newton product `Σ_r J_rᵀ B_r J_r v` over the rows.
    public func gaussNewtonProduct(_ pass: ForwardPass, direction v: DenseParameters) -> DenseParameters {
        let jv = jacobianProduct(pass, direction: v).product
        var u = [Float](repeating: 0, count: jv.count)
        pass.outputs.withUnsafeBufferPointer { z in
            jv.withUnsafeBufferPointer { jvp in
                u.withUnsafeMutableBufferPointer { up in
                    spec.loss.curvatureProduct(outputs: z, jvp, classes: spec.classes, into: up)
                }
            }
        }
        return backward(pass, outputGradient: u)
    }

    /// The per-sample Jacobian slices `D^m = ∂z^L/∂S^m` for `m = 1…L`, each
    /// `rows × n_L × n_m` (row r, output k, neuron c), computed by
    /// back-propagating every unit vector of `z^L` at once.
    public func jacobianSlices(_ pass: ForwardPass) -> [[Float]] {
        let rows = pass.rows, classes = spec.classes
        var slices = [[Float]](repeating: [], count: spec.depth + 1)
        // D^L[r, k, :] = e_k
        var top = [Float](repeating: 0, count: rows * classes * classes)
        for r in 0..<rows {
            for k in 0..<classes { top[(r * classes + k) * classes + k] = 1 }
        }
        slices[spec.depth] = top
        parameters.values.withUnsafeBufferPointer { theta in
            for m in stride(from: spec.depth, to: 1, by: -1) {
                let nIn = spec.layerSizes[m - 1], nOut = spec.layerSizes[m]
                // D^{m−1}[r, k, :] = (D^m[r, k, :] W^mᵀ) ⊙ σ'(S^{m−1}_r)
                var below = uninitialized(rows * classes * nIn)
                slices[m].withUnsafeBufferPointer { d in
                    below.withUnsafeMutableBufferPointer { out in
                        BLAS.gemm(transposeB: true, m: rows * classes, n: nIn, k: nOut,
                                  d.baseAddress!, lda: nOut,
                                  theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                                  out.baseAddress!, ldc: nIn)
                        pass.activations[m - 1].withUnsafeBufferPointer { z in
                            let activation = spec.activation(ofLayer: m - 1)
                            for r in 0..<rows {
                                let zr = UnsafeBufferPointer(rebasing: z[(r * nIn)..<((r + 1) * nIn)])
                                for k in 0..<classes {
                                    let start = (r * classes + k) * nIn
                                    activation.multiplyByDerivative(UnsafeMutableBufferPointer(rebasing: out[start..<(start + nIn)]), output: zr)
                                }
                            }
                        }
                    }
                }
                slices[m - 1] = below
            }
        }
        return Array(slices[1...])
    }

    /// The number of rows whose predicted class is the label.
    public func correctCount(_ pass: ForwardPass, labels: [Int32]) -> Int {
        pass.outputs.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in spec.loss.correctCount(outputs: z, labels: y, classes: spec.classes) }
        }
    }

    /// Σ_r ξ(z_r, y_r) for an already computed pass.
    public func loss(_ pass: ForwardPass, labels: [Int32]) -> Double {
        pass.outputs.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in spec.loss.value(outputs: z, labels: y, classes: spec.classes) }
        }
    }
}

/// A buffer of `count` floats whose contents are about to be overwritten
/// whole (by a GEMM with β = 0), so they are not zeroed first.
@inlinable
func uninitialized(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

/// `out[c] = Σ_r x[r, c]` for a row-major `rows × columns` matrix.
@inlinable
func columnSums(_ x: UnsafeBufferPointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    for c in 0..<columns { out[c] = 0 }
    for r in 0..<rows {
        let row = r * columns
        for c in 0..<columns { out[c] += x[row + c] }
    }
}
