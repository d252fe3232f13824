import NewtonCore
import XCTest

final class BlockKernelsTests: XCTestCase {
    /// Builds every block's cache from the worker-side slices, as servers do:
    /// every other block gets its share packed, as over the network.
    private func caches(_ f: KernelFixture, grid: PartitionGrid) throws -> (caches: [BlockJacobian], outputs: [Float]) {
        let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
        let slices = f.kernels.jacobianSlices(pass)
        let caches = try grid.blocks.enumerated().map { index, b -> BlockJacobian in
            let rows = grid.inputRange(b)
            let cols = grid.outputRange(b)
            var cache = BlockJacobian(
                rows: f.rows, classes: f.spec.classes, inputWidth: rows.count, outputWidth: cols.count, hasBias: grid.hasBias(b))
            let nIn = f.spec.layerSizes[b.layer - 1]
            let nOut = f.spec.layerSizes[b.layer]
            let z = pass.activations[b.layer - 1]
            let inputs = (0..<f.rows).flatMap { s in rows.map { z[s * nIn + $0] } }
            let share = SliceShare.columns(of: slices[b.layer - 1], classes: f.spec.classes, fullWidth: nOut, columns: cols)
            try cache.store(rowOffset: 0, inputs: inputs, slices: index.isMultiple(of: 2) ? share : .packed(share.packed))
            return cache
        }
        return (caches, pass.outputs)
    }

    private let grids: [[Int]] = [[1, 1, 1, 1], [2, 3, 2, 1], [3, 2, 3, 2], [5, 7, 6, 4]]

    /// Σ_b J_b v_b equals the R-operator's Jv, on every grid.
    func testCachedJacobianProductEqualsROperator() throws {
        let f = try KernelFixture()
        let v = f.randomDirection(seed: 4)
        let jv = f.kernels.jacobianProduct(f.kernels.forward(inputs: f.inputs, rows: f.rows), direction: v).product
        for partitions in grids {
            let grid = try PartitionGrid(spec: f.spec, partitions: partitions)
            let (caches, _) = try caches(f, grid: grid)
            var sum = [Float](repeating: 0, count: jv.count)
            for (b, cache) in zip(grid.blocks, caches) {
                for (i, x) in cache.jacobianProduct(grid.extract(b, from: v)).enumerated() { sum[i] += x }
            }
            XCTAssertLessThan(maxRelativeDifference(jv, sum), 1e-5, "grid \(partitions)")
        }
    }

    /// Each J_bᵀ u is block b of the worker's Jᵀu, and the full Gauss-Newton
    /// product assembled from blocks equals the R-operator one.
    func testCachedTransposeAndGaussNewtonEqualROperator() throws {
        for loss in Loss.allCases {
            let f = try KernelFixture(activation: .relu, loss: loss)
            let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
            let u = f.randomOutputs(seed: 8)
            let v = f.randomDirection(seed: 9)
            let jtu = f.kernels.backward(pass, outputGradient: u)
            let gv = f.kernels.gaussNewtonProduct(pass, direction: v)
            for partitions in grids {
                let grid = try PartitionGrid(spec: f.spec, partitions: partitions)
                let (caches, outputs) = try caches(f, grid: grid)
                let blocks = zip(grid.blocks, caches).map { $1.jacobianTransposeProduct(u) }
                XCTAssertLessThan(maxRelativeDifference(jtu.values, try grid.assemble(blocks).values), 1e-5, "grid \(partitions)")

                var jvSum = [Float](repeating: 0, count: u.count)
                for (b, cache) in zip(grid.blocks, caches) {
                    for (i, x) in cache.jacobianProduct(grid.extract(b, from: v)).enumerated() { jvSum[i] += x }
                }
                var bu = [Float](repeating: 0, count: u.count)
                outputs.withUnsafeBufferPointer { z in
                    jvSum.withUnsafeBufferPointer { j in
                        bu.withUnsafeMutableBufferPointer { o in
                            loss.curvatureProduct(outputs: z, j, classes: f.spec.classes, into: o)
                        }
                    }
                }
                let assembled = try grid.assemble(caches.map { $0.jacobianTransposeProduct(bu) })
                XCTAssertLessThan(maxRelativeDifference(gv.values, assembled.values), 1e-5, "\(loss) grid \(partitions)")
            }
        }
    }

    /// With several BLAS threads the per-sample loops run in one chunk of
    /// rows per thread (here 3, 3 and 4 rows); every value is as in one pass.
    func testRowChunksChangeNoValue() throws {
        let f = try KernelFixture(activation: .relu, rows: 10)
        let grid = try PartitionGrid(spec: f.spec, partitions: [2, 3, 2, 1])
        let (caches, _) = try caches(f, grid: grid)
        let v = f.randomDirection(seed: 4)
        let u = f.randomOutputs(seed: 8)
        func products() -> [[UInt32]] {
            zip(grid.blocks, caches).flatMap { b, cache in
                [cache.jacobianProduct(grid.extract(b, from: v)), cache.jacobianTransposeProduct(u)].map { $0.map(\.bitPattern) }
            }
        }
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        BLAS.threads = 1
        let onePass = products()
        BLAS.threads = 3
        XCTAssertEqual(products(), onePass)
    }

    /// The diagonal block G_bb is symmetric PSD and equals the matching block
    /// of the full G applied to a vector supported on that block only.
    func testDiagonalBlockProduct() throws {
        let f = try KernelFixture(loss: .crossEntropy)
        let grid = try PartitionGrid(spec: f.spec, partitions: [2, 2, 3, 2])
        let (caches, outputs) = try caches(f, grid: grid)
        let pass = f.kernels.forward(inputs: f.inputs, rows: f.rows)
        for (index, b) in grid.blocks.enumerated() {
            let v = grid.extract(b, from: f.randomDirection(seed: 50 + UInt64(index)))
            let w = grid.extract(b, from: f.randomDirection(seed: 80 + UInt64(index)))
            let gv = caches[index].gaussNewtonProduct(v, loss: f.spec.loss, outputs: outputs, scale: 1)
            let gw = caches[index].gaussNewtonProduct(w, loss: f.spec.loss, outputs: outputs, scale: 1)
            XCTAssertLessThan(relativeError(dot(gv, w), dot(v, gw)), 1e-5)
            XCTAssertGreaterThanOrEqual(dot(v, gv), -1e-6)
            var embedded = DenseParameters(zeros: f.spec)
            try grid.insert(b, values: v, into: &embedded)
            let full = f.kernels.gaussNewtonProduct(pass, direction: embedded)
            XCTAssertLessThan(maxRelativeDifference(grid.extract(b, from: full), gv), 1e-5, "block \(b)")
        }
    }

    func testStoreRejectsMisshapenSlices() {
        var cache = BlockJacobian(rows: 4, classes: 3, inputWidth: 2, outputWidth: 5, hasBias: true)
        let twoRows = SliceShare.columns(of: [Float](repeating: 1, count: 30), classes: 3, fullWidth: 5, columns: 0..<5)
        XCTAssertThrowsError(try cache.store(rowOffset: 3, inputs: [Float](repeating: 0, count: 4), slices: twoRows))
        XCTAssertThrowsError(try cache.store(rowOffset: 0, inputs: [Float](repeating: 0, count: 5), slices: twoRows))
        let threeRows = SliceShare.columns(of: [Float](repeating: 1, count: 45), classes: 3, fullWidth: 5, columns: 0..<5)
        XCTAssertThrowsError(try cache.store(rowOffset: 0, inputs: [Float](repeating: 0, count: 4), slices: threeRows))
        XCTAssertThrowsError(try cache.store(rowOffset: 0, inputs: [Float](repeating: 0, count: 4), slices: .packed(threeRows.packed)))
        XCTAssertEqual(cache.slices, [Float](repeating: 0, count: 60), "a refused store changed the cache")
    }
}
