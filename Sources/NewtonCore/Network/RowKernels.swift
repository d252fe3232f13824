/// The activations of a forward pass over a batch of rows: `Z^0` (the inputs)
/// through `Z^L` (the linear outputs), each `rows × n_m`, row-major.
public struct ForwardPass: Sendable {
    public let rows: Int
    public var activations: [[Float]]

    /// `Z^L`, `rows × n_L`.
    public var outputs: [Float] { activations[activations.count - 1] }
}

/// The R-operator forward pass along a direction v: `R{S^m}` (when kept)
/// and `R{Z^m} = σ'(S^m) ⊙ R{S^m}` for `m = 1…L` (index 0 is empty: the
/// inputs do not depend on θ).
public struct RForwardPass: Sendable {
    public var rPreactivations: [[Float]]
    public var rActivations: [[Float]]

    /// `Jv = R{z^L}`, `rows × n_L`.
    public var product: [Float] { rActivations[rActivations.count - 1] }
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
                let nIn = spec.layerSizes[m - 1]
                let nOut = spec.layerSizes[m]
                var s = repeatedRows(theta.baseAddress! + parameters.biasOffsets[m - 1], width: nOut, rows: rows)
                activations[m - 1].withUnsafeBufferPointer { z in
                    s.withUnsafeMutableBufferPointer { sp in
                        BLAS.gemm(
                            m: rows, n: nOut, k: nIn,
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
        var gradient = DenseParameters(zeros: spec)
        forEachDelta(pass, outputGradient: u) { m, delta in
            writeOuterProducts(layer: m, inputs: pass.activations[m - 1], deltas: delta, rows: pass.rows, into: &gradient)
        }
        return gradient
    }

    /// `Σ_r (∇ξ_r)²`, element-wise squares of the per-row gradients, summed:
    /// for a dense layer `Σ_r (z_r δ_rᵀ)² = (Z ⊙ Z)ᵀ (Δ ⊙ Δ)` — one GEMM per
    /// layer. The diagonal of the empirical Fisher (Martens' preconditioner).
    public func squaredGradientSum(_ pass: ForwardPass, labels: [Int32]) -> DenseParameters {
        var outputGradient = [Float](repeating: 0, count: pass.rows * spec.classes)
        pass.outputs.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                outputGradient.withUnsafeMutableBufferPointer { spec.loss.gradient(outputs: z, labels: y, classes: spec.classes, into: $0) }
            }
        }
        var sum = DenseParameters(zeros: spec)
        forEachDelta(pass, outputGradient: outputGradient) { m, delta in
            writeOuterProducts(
                layer: m, inputs: pass.activations[m - 1].map { $0 * $0 }, deltas: delta.map { $0 * $0 },
                rows: pass.rows, into: &sum)
        }
        return sum
    }

    /// Back-propagates `u` (the gradient with respect to `z^L`): calls
    /// `visit(m, Δ^m)` for m = L … 1, with `Δ^{m−1} = (Δ^m W^mᵀ) ⊙ σ'(S^{m−1})`.
    private func forEachDelta(_ pass: ForwardPass, outputGradient u: [Float], _ visit: (Int, [Float]) -> Void) {
        precondition(u.count == pass.rows * spec.classes)
        var delta = u
        let rows = pass.rows
        for m in stride(from: spec.depth, through: 1, by: -1) {
            visit(m, delta)
            guard m > 1 else { break }
            let nIn = spec.layerSizes[m - 1]
            let nOut = spec.layerSizes[m]
            var previous = uninitialized(rows * nIn)
            parameters.values.withUnsafeBufferPointer { theta in
                delta.withUnsafeBufferPointer { d in
                    previous.withUnsafeMutableBufferPointer { p in
                        BLAS.gemm(
                            transposeB: true, m: rows, n: nIn, k: nOut, d.baseAddress!, lda: nOut,
                            theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut, p.baseAddress!, ldc: nIn)
                        pass.activations[m - 1].withUnsafeBufferPointer { z in
                            spec.activation(ofLayer: m - 1).multiplyByDerivative(p, output: z)
                        }
                    }
                }
            }
            delta = previous
        }
    }

    /// Overwrites layer m of `target` with `Zᵀ Δ` (weights) and `1ᵀ Δ` (bias).
    private func writeOuterProducts(layer m: Int, inputs z: [Float], deltas d: [Float], rows: Int, into target: inout DenseParameters) {
        let nIn = spec.layerSizes[m - 1]
        let nOut = spec.layerSizes[m]
        let weights = target.weightOffsets[m - 1]
        let bias = target.biasOffsets[m - 1]
        target.values.withUnsafeMutableBufferPointer { g in
            z.withUnsafeBufferPointer { zp in
                d.withUnsafeBufferPointer { dp in
                    BLAS.gemm(
                        transposeA: true, m: nIn, n: nOut, k: rows, zp.baseAddress!, lda: nIn, dp.baseAddress!, ldb: nOut,
                        g.baseAddress! + weights, ldc: nOut)
                    columnSums(dp, rows: rows, columns: nOut, into: g.baseAddress! + bias)
                }
            }
        }
    }

    /// The R-operator forward pass: `Jv` (`rows × n_L`), the change of the
    /// outputs along direction `v`, with `R{Z^m}` of every layer and, when
    /// asked (the Hessian needs them), `R{S^m}`.
    public func jacobianProduct(_ pass: ForwardPass, direction v: DenseParameters, keepingPreactivations: Bool = false) -> RForwardPass {
        let rows = pass.rows
        // R{Z^0} = 0: the inputs do not depend on θ, so layer 1 skips that term.
        var rActivations: [[Float]] = [[]]
        var rPreactivations: [[Float]] = [[]]
        parameters.values.withUnsafeBufferPointer { theta in
            v.values.withUnsafeBufferPointer { vp in
                for m in 1...spec.depth {
                    let nIn = spec.layerSizes[m - 1]
                    let nOut = spec.layerSizes[m]
                    // R{S^m} = R{Z^{m−1}} W^m + Z^{m−1} V^m + 1 v_b^mᵀ
                    var rs = repeatedRows(vp.baseAddress! + v.biasOffsets[m - 1], width: nOut, rows: rows)
                    rs.withUnsafeMutableBufferPointer { out in
                        pass.activations[m - 1].withUnsafeBufferPointer { z in
                            BLAS.gemm(
                                m: rows, n: nOut, k: nIn, z.baseAddress!, lda: nIn,
                                vp.baseAddress! + v.weightOffsets[m - 1], ldb: nOut,
                                beta: 1, out.baseAddress!, ldc: nOut)
                        }
                        if m > 1 {
                            rActivations[m - 1].withUnsafeBufferPointer { rz in
                                BLAS.gemm(
                                    m: rows, n: nOut, k: nIn, rz.baseAddress!, lda: nIn,
                                    theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                                    beta: 1, out.baseAddress!, ldc: nOut)
                            }
                        }
                    }
                    rPreactivations.append(keepingPreactivations ? rs : [])
                    // R{Z^m} = σ'(S^m) ⊙ R{S^m}
                    pass.activations[m].withUnsafeBufferPointer { z in
                        rs.withUnsafeMutableBufferPointer { spec.activation(ofLayer: m).multiplyByDerivative($0, output: z) }
                    }
                    rActivations.append(rs)
                }
            }
        }
        return RForwardPass(rPreactivations: rPreactivations, rActivations: rActivations)
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

    /// The Hessian product `Σ_r ∇²ξ_r v` over the rows, by Pearlmutter's
    /// R-operator: the R-forward pass gives `R{S^m}` and `R{Z^m}`; the
    /// R-backward pass is
    /// `R{Δ^L} = B R{z^L}`,
    /// `R{Δ^{m−1}} = (R{Δ^m} W^mᵀ + Δ^m V^mᵀ) ⊙ σ'(S^{m−1}) + (Δ^m W^mᵀ) ⊙ σ''(S^{m−1}) ⊙ R{S^{m−1}}`,
    /// and `R{∂W^m} = Z^{m−1}ᵀ R{Δ^m} + R{Z^{m−1}}ᵀ Δ^m`, `R{∂b^m} = 1ᵀ R{Δ^m}`.
    /// Unlike the Gauss-Newton product this is the true, indefinite Hessian.
    public func hessianProduct(_ pass: ForwardPass, labels: [Int32], direction v: DenseParameters) -> DenseParameters {
        let rows = pass.rows
        let classes = spec.classes
        let r = jacobianProduct(pass, direction: v, keepingPreactivations: true)
        var delta = [Float](repeating: 0, count: rows * classes)
        var rDelta = [Float](repeating: 0, count: rows * classes)
        pass.outputs.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                delta.withUnsafeMutableBufferPointer { spec.loss.gradient(outputs: z, labels: y, classes: classes, into: $0) }
            }
            r.product.withUnsafeBufferPointer { jv in
                rDelta.withUnsafeMutableBufferPointer { spec.loss.curvatureProduct(outputs: z, jv, classes: classes, into: $0) }
            }
        }
        var product = DenseParameters(zeros: spec)
        for m in stride(from: spec.depth, through: 1, by: -1) {
            let nIn = spec.layerSizes[m - 1]
            let nOut = spec.layerSizes[m]
            let weights = parameters.weightRange(layer: m)
            let bias = parameters.biasRange(layer: m)
            // R{∂W^m} = Z^{m−1}ᵀ R{Δ^m} + R{Z^{m−1}}ᵀ Δ^m,  R{∂b^m} = 1ᵀ R{Δ^m}
            product.values.withUnsafeMutableBufferPointer { h in
                rDelta.withUnsafeBufferPointer { rd in
                    pass.activations[m - 1].withUnsafeBufferPointer { z in
                        BLAS.gemm(
                            transposeA: true, m: nIn, n: nOut, k: rows, z.baseAddress!, lda: nIn, rd.baseAddress!, ldb: nOut,
                            h.baseAddress! + weights.lowerBound, ldc: nOut)
                    }
                    columnSums(rd, rows: rows, columns: nOut, into: h.baseAddress! + bias.lowerBound)
                }
                if m > 1 {
                    r.rActivations[m - 1].withUnsafeBufferPointer { rz in
                        delta.withUnsafeBufferPointer { d in
                            BLAS.gemm(
                                transposeA: true, m: nIn, n: nOut, k: rows, rz.baseAddress!, lda: nIn, d.baseAddress!, ldb: nOut,
                                beta: 1, h.baseAddress! + weights.lowerBound, ldc: nOut)
                        }
                    }
                }
            }
            guard m > 1 else { break }
            // back = Δ^m W^mᵀ,  rBack = R{Δ^m} W^mᵀ + Δ^m V^mᵀ
            var back = uninitialized(rows * nIn)
            var rBack = uninitialized(rows * nIn)
            parameters.values.withUnsafeBufferPointer { theta in
                v.values.withUnsafeBufferPointer { vp in
                    delta.withUnsafeBufferPointer { d in
                        rDelta.withUnsafeBufferPointer { rd in
                            back.withUnsafeMutableBufferPointer { b in
                                rBack.withUnsafeMutableBufferPointer { rb in
                                    let w = theta.baseAddress! + weights.lowerBound
                                    let vw = vp.baseAddress! + weights.lowerBound
                                    BLAS.gemm(
                                        transposeB: true, m: rows, n: nIn, k: nOut, d.baseAddress!, lda: nOut, w, ldb: nOut, b.baseAddress!,
                                        ldc: nIn)
                                    BLAS.gemm(
                                        transposeB: true, m: rows, n: nIn, k: nOut, rd.baseAddress!, lda: nOut, w, ldb: nOut,
                                        rb.baseAddress!, ldc: nIn)
                                    BLAS.gemm(
                                        transposeB: true, m: rows, n: nIn, k: nOut, d.baseAddress!, lda: nOut, vw, ldb: nOut,
                                        beta: 1, rb.baseAddress!, ldc: nIn)
                                }
                            }
                        }
                    }
                }
            }
            let activation = spec.activation(ofLayer: m - 1)
            var curvatureTerm = back
            pass.activations[m - 1].withUnsafeBufferPointer { z in
                curvatureTerm.withUnsafeMutableBufferPointer { c in
                    activation.multiplyBySecondDerivative(c, output: z)
                    r.rPreactivations[m - 1].withUnsafeBufferPointer { rs in
                        for i in c.indices { c[i] *= rs[i] }
                    }
                }
                rBack.withUnsafeMutableBufferPointer { rb in
                    activation.multiplyByDerivative(rb, output: z)
                    curvatureTerm.withUnsafeBufferPointer { c in for i in rb.indices { rb[i] += c[i] } }
                }
                back.withUnsafeMutableBufferPointer { activation.multiplyByDerivative($0, output: z) }
            }
            delta = back
            rDelta = rBack
        }
        return product
    }

    /// The per-sample Jacobian slices `D^m = ∂z^L/∂S^m` for `m = 1…L`, each
    /// `rows × n_L × n_m` (row r, output k, neuron c), computed by
    /// back-propagating every unit vector of `z^L` at once.
    public func jacobianSlices(_ pass: ForwardPass) -> [[Float]] {
        let rows = pass.rows
        let classes = spec.classes
        var slices = [[Float]](repeating: [], count: spec.depth + 1)
        // D^L[r, k, :] = e_k
        var top = [Float](repeating: 0, count: rows * classes * classes)
        for r in 0..<rows {
            for k in 0..<classes { top[(r * classes + k) * classes + k] = 1 }
        }
        slices[spec.depth] = top
        parameters.values.withUnsafeBufferPointer { theta in
            for m in stride(from: spec.depth, to: 1, by: -1) {
                let nIn = spec.layerSizes[m - 1]
                let nOut = spec.layerSizes[m]
                // D^{m−1}[r, k, :] = (D^m[r, k, :] W^mᵀ) ⊙ σ'(S^{m−1}_r)
                var below = uninitialized(rows * classes * nIn)
                slices[m].withUnsafeBufferPointer { d in
                    below.withUnsafeMutableBufferPointer { out in
                        BLAS.gemm(
                            transposeB: true, m: rows * classes, n: nIn, k: nOut,
                            d.baseAddress!, lda: nOut,
                            theta.baseAddress! + parameters.weightOffsets[m - 1], ldb: nOut,
                            out.baseAddress!, ldc: nIn)
                        pass.activations[m - 1].withUnsafeBufferPointer { z in
                            let activation = spec.activation(ofLayer: m - 1)
                            for r in 0..<rows {
                                let zr = UnsafeBufferPointer(rebasing: z[(r * nIn)..<((r + 1) * nIn)])
                                for k in 0..<classes {
                                    let start = (r * classes + k) * nIn
                                    activation.multiplyByDerivative(
                                        UnsafeMutableBufferPointer(rebasing: out[start..<(start + nIn)]), output: zr)
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

/// `rows` copies of the `width` values at `row`, one after another (a bias
/// broadcast over a batch, ready for a GEMM with β = 1).
@inlinable
func repeatedRows(_ row: UnsafePointer<Float>, width: Int, rows: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: rows * width) { buffer, count in
        for r in 0..<rows { (buffer.baseAddress! + r * width).update(from: row, count: width) }
        count = rows * width
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
