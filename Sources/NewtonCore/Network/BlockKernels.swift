import Dispatch

/// What a block owner caches for the current Gauss-Newton subsample S, and
/// the math a **server** does with it on its one block `(m, i, j)`:
/// `J_b v_b`, `J_bᵀ u` and the diagonal-block product `G_bb v_b`.
///
/// The cache holds the block's share of the per-sample Jacobian —
/// `∂z^L/∂S^m` restricted to output group `j` (`|S| × n_L × |J|`) — and the
/// layer inputs restricted to input group `i` (`|S| × |I|`).
public struct BlockJacobian: Sendable {
    public let rows: Int
    public let classes: Int
    public let inputWidth: Int
    public let outputWidth: Int
    public let hasBias: Bool
    /// `|S| × |I|`, row-major.
    public private(set) var inputs: [Float]
    /// `|S| × n_L × |J|`, row-major.
    public private(set) var slices: [Float]

    public init(rows: Int, classes: Int, inputWidth: Int, outputWidth: Int, hasBias: Bool) {
        self.rows = rows
        self.classes = classes
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        self.hasBias = hasBias
        self.inputs = [Float](repeating: 0, count: rows * inputWidth)
        self.slices = [Float](repeating: 0, count: rows * classes * outputWidth)
    }

    /// The number of parameters of the block (weights, then bias if any).
    public var parameterCount: Int { inputWidth * outputWidth + (hasBias ? outputWidth : 0) }

    /// Stores the rows `offset ..< offset + count` of the subsample: their
    /// layer inputs and their share of the slices.
    public mutating func store(rowOffset offset: Int, inputs newInputs: [Float], slices newSlices: SliceShare) throws {
        let count = newInputs.count / max(inputWidth, 1)
        guard newInputs.count == count * inputWidth, offset >= 0, offset + count <= rows else {
            throw CoreError(
                .shapeMismatch,
                "Jacobian rows \(offset)..<\(offset + count) of \(rows) do not fit a block of \(inputWidth) inputs (got \(newInputs.count) input values)"
            )
        }
        let width = classes * outputWidth
        try slices.withUnsafeMutableBufferPointer { all in
            try newSlices.write(
                rows: count, classes: classes, width: outputWidth,
                into: UnsafeMutableBufferPointer(rebasing: all[(offset * width)..<((offset + count) * width)]))
        }
        inputs.replaceSubrange((offset * inputWidth)..<((offset + count) * inputWidth), with: newInputs)
    }

    /// `J_b v_b` (`|S| × n_L`): for each sample s, `D_s (Z_s V + v_bias)`.
    public func jacobianProduct(_ v: [Float]) -> [Float] {
        precondition(v.count == parameterCount, "block product with \(v.count) values for \(parameterCount) parameters")
        var t = layerInputProduct(v)
        var out = [Float](repeating: 0, count: rows * classes)
        let width = outputWidth
        let classes = self.classes
        slices.withUnsafeBufferPointer { d in
            t.withUnsafeMutableBufferPointer { tb in
                out.withUnsafeMutableBufferPointer { o in
                    let (dp, tp, op) = (d.baseAddress!, tb.baseAddress!, o.baseAddress!)
                    forEachRowChunk(rows) { chunk in
                        for s in chunk { BLAS.gemv(m: classes, n: width, dp + s * classes * width, tp + s * width, op + s * classes) }
                    }
                }
            }
        }
        return out
    }

    /// `J_bᵀ u` for `u` of shape `|S| × n_L`: `T_s = D_sᵀ u_s`, then
    /// weights `Zᵀ T` and bias `1ᵀ T`.
    public func jacobianTransposeProduct(_ u: [Float]) -> [Float] {
        precondition(u.count == rows * classes, "transpose product with \(u.count) values for \(rows) × \(classes)")
        let width = outputWidth
        var t = [Float](repeating: 0, count: rows * width)
        let classes = self.classes
        slices.withUnsafeBufferPointer { d in
            u.withUnsafeBufferPointer { up in
                t.withUnsafeMutableBufferPointer { tp in
                    let (dp, uBase, tBase) = (d.baseAddress!, up.baseAddress!, tp.baseAddress!)
                    forEachRowChunk(rows) { chunk in
                        for s in chunk {
                            let ts = tBase + s * width
                            for k in 0..<classes {
                                let a = uBase[s * classes + k]
                                let dsk = dp + (s * classes + k) * width
                                for c in 0..<width { ts[c] += a * dsk[c] }
                            }
                        }
                    }
                }
            }
        }
        var result = [Float](repeating: 0, count: parameterCount)
        inputs.withUnsafeBufferPointer { z in
            t.withUnsafeBufferPointer { tp in
                result.withUnsafeMutableBufferPointer { r in
                    BLAS.gemm(
                        transposeA: true, m: inputWidth, n: width, k: rows,
                        z.baseAddress!, lda: inputWidth, tp.baseAddress!, ldb: width,
                        r.baseAddress!, ldc: width)
                    if hasBias {
                        columnSums(tp, rows: rows, columns: width, into: r.baseAddress! + inputWidth * width)
                    }
                }
            }
        }
        return result
    }

    /// The diagonal block of the Gauss-Newton matrix applied to `v`:
    /// `scale · J_bᵀ B J_b v`, with `B` from the loss at the cached outputs.
    public func gaussNewtonProduct(_ v: [Float], loss: Loss, outputs: [Float], scale: Float) -> [Float] {
        let jv = jacobianProduct(v)
        var u = [Float](repeating: 0, count: jv.count)
        outputs.withUnsafeBufferPointer { z in
            jv.withUnsafeBufferPointer { jvp in
                u.withUnsafeMutableBufferPointer { up in
                    loss.curvatureProduct(outputs: z, jvp, classes: classes, into: up)
                    for i in up.indices { up[i] *= scale }
                }
            }
        }
        return jacobianTransposeProduct(u)
    }

    /// `Z V + 1 v_biasᵀ` (`|S| × |J|`): the block's contribution to `R{S^m}`.
    private func layerInputProduct(_ v: [Float]) -> [Float] {
        let width = outputWidth
        return v.withUnsafeBufferPointer { vp in
            var t = hasBias ? repeatedRows(vp.baseAddress! + inputWidth * width, width: width, rows: rows) : uninitialized(rows * width)
            inputs.withUnsafeBufferPointer { z in
                t.withUnsafeMutableBufferPointer { tp in
                    BLAS.gemm(
                        m: rows, n: width, k: inputWidth, z.baseAddress!, lda: inputWidth,
                        vp.baseAddress!, ldb: width, beta: hasBias ? 1 : 0, tp.baseAddress!, ldc: width)
                }
            }
            return t
        }
    }
}

/// Runs `body` on `0..<rows` cut into one contiguous chunk per BLAS thread,
/// concurrently: the per-sample loops between a product's GEMMs get the
/// cores its GEMMs get. Only for work whose rows are independent, so the
/// cut changes no value.
func forEachRowChunk(_ rows: Int, _ body: (Range<Int>) -> Void) {
    let chunks = min(BLAS.threads, rows)
    guard chunks > 1 else { return body(0..<rows) }
    withoutActuallyEscaping(body) { body in
        let shared = DisjointRowsBody(run: body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in shared.run((c * rows / chunks)..<((c + 1) * rows / chunks)) }
    }
}

/// A row loop shared by the chunks of `forEachRowChunk`: each chunk writes
/// only its own rows, which is what makes the unchecked sharing sound.
private struct DisjointRowsBody: @unchecked Sendable {
    let run: (Range<Int>) -> Void
}
