import Foundation
import NewtonCore
import NewtonProto
import NewtonTraining

// Conversions between the Swift types the optimiser uses and the
// `newtonps.v1` messages. Decoding validates everything: a message from the
// network is untrusted, and a bad one becomes a `TransportError` naming the
// field, never a crash.

#if _endian(big)
    #error("the wire format carries little-endian float32; add byte swapping for big-endian hosts")
#endif

typealias WireTensor = Newtonps_V1_Tensor

extension Newtonps_V1_Tensor {
    /// A tensor of `values` with `shape` (one dimension when omitted).
    init(_ values: [Float], shape: [Int]? = nil) {
        self.init()
        self.shape = (shape ?? [values.count]).map(Int64.init)
        self.data = values.withUnsafeBytes { Data($0) }
    }

    /// The values, after checking the bytes fill the shape exactly.
    func floats(_ what: @autoclosure () -> String) throws -> [Float] {
        var count = 1
        for d in shape {
            guard d >= 0, d <= Int64(Int32.max) else {
                throw TransportError(.invalidRequest, "\(what()): tensor dimension \(d) is out of range")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow else { throw TransportError(.invalidRequest, "\(what()): tensor shape \(shape) is too large") }
            count = product
        }
        guard count <= data.count / MemoryLayout<Float>.size, data.count == count * MemoryLayout<Float>.size else {
            throw TransportError(.invalidRequest, "\(what()): shape \(shape) does not match \(data.count) bytes of float32")
        }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { raw in
                if count > 0 { memcpy(buffer.baseAddress!, raw.baseAddress!, count * 4) }
            }
            initialized = count
        }
    }
}

extension Newtonps_V1_RunResponse {
    init(_ answers: [BlockDots]) {
        self.init()
        blocks = answers.map { answer in
            var dots = Newtonps_V1_BlockDots()
            dots.block = Int32(answer.block)
            dots.values = answer.values
            return dots
        }
    }

    /// Each block's dots; the coordinator checks them against its grid.
    var dots: [BlockDots] { blocks.map { BlockDots(block: Int($0.block), values: $0.values) } }
}

extension Newtonps_V1_BlockTensors {
    init(blocks: [Int], values: [[Float]]) {
        self.init()
        self.blocks = blocks.map(Int32.init)
        self.values = values.map { WireTensor($0) }
    }

    /// The blocks and their values, checked to pair up.
    func decoded(_ what: String) throws -> (blocks: [Int], values: [[Float]]) {
        guard blocks.count == values.count else {
            throw TransportError(.invalidRequest, "\(what): \(blocks.count) block indices but \(values.count) tensors")
        }
        return (blocks.map(Int.init), try values.enumerated().map { try $1.floats("\(what), block \(blocks[$0])") })
    }
}

extension Newtonps_V1_PackedSlice {
    init(_ slice: PackedSlice) {
        self.init()
        keptColumns = Data(slice.keptColumns)
        values = WireTensor(slice.values)
    }

    /// The packing; its fit to the block's shape is checked where it is stored.
    func decoded(_ what: @autoclosure () -> String) throws -> PackedSlice {
        PackedSlice(keptColumns: [UInt8](keptColumns), values: try values.floats(what()))
    }
}

extension VectorName {
    /// A vector name from a request: only the names the trainers use.
    public init(wire name: String) throws {
        self.init(rawValue: name)
        guard VectorName.known.contains(self) else {
            throw TransportError(.invalidRequest, "vector name '\(name.prefix(64))' is not one of the trainers' vectors (VectorName.known)")
        }
    }
}

extension PartitionGrid {
    public var wire: Newtonps_V1_PartitionGrid {
        var grid = Newtonps_V1_PartitionGrid()
        grid.network = spec.wire
        grid.groupSizes = groups.map { ranges in
            var sizes = Newtonps_V1_GroupSizes()
            sizes.sizes = ranges.map { Int32($0.count) }
            return sizes
        }
        return grid
    }

    public init(wire: Newtonps_V1_PartitionGrid) throws {
        let spec = try NetworkSpec(wire: wire.network)
        do {
            try self.init(spec: spec, groupSizes: wire.groupSizes.map { $0.sizes.map(Int.init) })
        } catch {
            throw TransportError(.invalidRequest, "partition grid", cause: error)
        }
    }
}

extension NetworkSpec {
    public var wire: Newtonps_V1_NetworkSpec {
        var spec = Newtonps_V1_NetworkSpec()
        spec.layerSizes = layerSizes.map(Int32.init)
        spec.hiddenActivations = hiddenActivations.map(\.rawValue)
        spec.loss = loss.rawValue
        return spec
    }

    public init(wire: Newtonps_V1_NetworkSpec) throws {
        guard let loss = Loss(rawValue: wire.loss) else { throw TransportError(.invalidRequest, "unknown loss '\(wire.loss)'") }
        let activations = try wire.hiddenActivations.map { name in
            guard let a = Activation(rawValue: name) else { throw TransportError(.invalidRequest, "unknown activation '\(name)'") }
            return a
        }
        do {
            try self.init(layerSizes: wire.layerSizes.map(Int.init), activations: activations, loss: loss)
        } catch {
            throw TransportError(.invalidRequest, "network spec", cause: error)
        }
    }
}

extension DataDescriptor {
    public var wire: Newtonps_V1_DataDescriptor {
        var d = Newtonps_V1_DataDescriptor()
        d.scaling = scaling.rawValue
        switch source {
        case .files(let format, let train, let test, let labelColumn, let header):
            var files = Newtonps_V1_FileData()
            files.format = format.rawValue
            files.train = train
            if let test { files.test = test }
            files.csvLabelColumn = Int32(labelColumn)
            if let header { files.csvHeader = header }
            d.files = files
        case .synthetic(let trainRows, let testRows, let features, let classes, let seed):
            var s = Newtonps_V1_SyntheticData()
            s.trainRows = Int64(trainRows)
            s.testRows = Int64(testRows)
            s.features = Int32(features)
            s.classes = Int32(classes)
            s.seed = seed
            d.synthetic = s
        }
        return d
    }

    public init(wire: Newtonps_V1_DataDescriptor) throws {
        guard let scaling = FeatureScaling(rawValue: wire.scaling) else {
            throw TransportError(.invalidRequest, "unknown feature scaling '\(wire.scaling)'")
        }
        switch wire.source {
        case .files(let f):
            guard let format = DataFormat(rawValue: f.format) else {
                throw TransportError(.invalidRequest, "unknown data format '\(f.format)'")
            }
            self.init(
                source: .files(
                    format: format, train: f.train, test: f.hasTest ? f.test : nil,
                    csvLabelColumn: Int(f.csvLabelColumn), csvHeader: f.hasCsvHeader ? f.csvHeader : nil),
                scaling: scaling)
        case .synthetic(let s):
            let problems = DataDescriptor.syntheticProblems(
                trainRows: Int(s.trainRows), testRows: Int(s.testRows), features: Int(s.features), classes: Int(s.classes))
            guard problems.isEmpty else { throw TransportError(.invalidRequest, problems.joined(separator: "; ")) }
            self.init(
                source: .synthetic(
                    trainRows: Int(s.trainRows), testRows: Int(s.testRows), features: Int(s.features),
                    classes: Int(s.classes), seed: s.seed), scaling: scaling)
        case nil:
            throw TransportError(.invalidRequest, "data descriptor names neither files nor synthetic data")
        }
    }
}

extension VectorOp {
    public var wire: Newtonps_V1_VectorOp {
        var op = Newtonps_V1_VectorOp()
        switch self {
        case .combine(let target, let terms):
            var c = Newtonps_V1_VectorOp.Combine()
            c.target = target.rawValue
            c.terms = terms.map { term in
                var t = Newtonps_V1_VectorTerm()
                t.coefficient = term.coefficient
                t.vector = term.vector.rawValue
                return t
            }
            op.combine = c
        case .fill(let target, let value):
            var f = Newtonps_V1_VectorOp.Fill()
            f.target = target.rawValue
            f.value = value
            op.fill = f
        case .dot(let a, let b):
            var d = Newtonps_V1_VectorOp.Dot()
            d.a = a.rawValue
            d.b = b.rawValue
            op.dot = d
        case .adam(let update, let weights, let gradient, let firstMoment, let secondMoment):
            var a = Newtonps_V1_VectorOp.Adam()
            a.learningRate = update.learningRate
            a.beta1 = update.beta1
            a.beta2 = update.beta2
            a.epsilon = update.epsilon
            a.step = Int64(update.step)
            a.weights = weights.rawValue
            a.gradient = gradient.rawValue
            a.firstMoment = firstMoment.rawValue
            a.secondMoment = secondMoment.rawValue
            op.adam = a
        case .multiply(let target, let a, let b):
            var m = Newtonps_V1_VectorOp.Multiply()
            m.target = target.rawValue
            m.a = a.rawValue
            m.b = b.rawValue
            op.multiply = m
        case .power(let target, let source, let scale, let shift, let exponent):
            var p = Newtonps_V1_VectorOp.Power()
            p.target = target.rawValue
            p.source = source.rawValue
            p.scale = scale
            p.shift = shift
            p.exponent = exponent
            op.power = p
        }
        return op
    }

    public init(wire: Newtonps_V1_VectorOp) throws {
        switch wire.op {
        case .combine(let c):
            self = .combine(
                target: try VectorName(wire: c.target),
                terms: try c.terms.map { VectorTerm($0.coefficient, try VectorName(wire: $0.vector)) })
        case .fill(let f):
            self = .fill(target: try VectorName(wire: f.target), value: f.value)
        case .dot(let d):
            self = .dot(try VectorName(wire: d.a), try VectorName(wire: d.b))
        case .adam(let a):
            guard a.step >= 1, a.step <= Int64(Int32.max) else {
                throw TransportError(.invalidRequest, "Adam step \(a.step) is out of range")
            }
            guard a.beta1 >= 0, a.beta1 < 1, a.beta2 >= 0, a.beta2 < 1, a.epsilon > 0, a.learningRate.isFinite else {
                throw TransportError(
                    .invalidRequest,
                    "Adam needs 0 ≤ β₁, β₂ < 1, ε > 0 and a finite rate; got β₁ \(a.beta1), β₂ \(a.beta2), ε \(a.epsilon), rate \(a.learningRate)"
                )
            }
            self = .adam(
                AdamUpdate(learningRate: a.learningRate, beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon, step: Int(a.step)),
                weights: try VectorName(wire: a.weights), gradient: try VectorName(wire: a.gradient),
                firstMoment: try VectorName(wire: a.firstMoment), secondMoment: try VectorName(wire: a.secondMoment))
        case .multiply(let m):
            self = .multiply(target: try VectorName(wire: m.target), a: try VectorName(wire: m.a), b: try VectorName(wire: m.b))
        case .power(let p):
            self = .power(
                target: try VectorName(wire: p.target), source: try VectorName(wire: p.source), scale: p.scale, shift: p.shift,
                exponent: p.exponent)
        case nil:
            throw TransportError(.invalidRequest, "a vector op with no operation")
        }
    }
}

extension BlockSolveRequest {
    public var wire: Newtonps_V1_BlockSolveRequest {
        var r = Newtonps_V1_BlockSolveRequest()
        r.block = Int32(block)
        r.generation = Int64(generation)
        r.rightHandSide = rightHandSide.rawValue
        r.solution = solution.rawValue
        r.residual = residual.rawValue
        r.damping = damping
        r.curvatureScale = curvatureScale
        r.tolerance = tolerance
        r.maxIterations = Int32(maxIterations)
        return r
    }

    public init(wire r: Newtonps_V1_BlockSolveRequest) throws {
        self.init(
            block: Int(r.block), generation: Int(r.generation), rightHandSide: try VectorName(wire: r.rightHandSide),
            solution: try VectorName(wire: r.solution), residual: try VectorName(wire: r.residual),
            damping: r.damping, curvatureScale: r.curvatureScale, tolerance: r.tolerance,
            maxIterations: max(0, Int(r.maxIterations)))
    }
}

extension BlockSolveReport {
    public var wire: Newtonps_V1_BlockSolveReport {
        var r = Newtonps_V1_BlockSolveReport()
        r.block = Int32(block)
        r.iterations = Int32(iterations)
        r.outcome = outcome.rawValue
        return r
    }

    public init(wire r: Newtonps_V1_BlockSolveReport) throws {
        guard let outcome = Outcome(rawValue: r.outcome) else {
            throw TransportError(.invalidRequest, "unknown solve outcome '\(r.outcome)'")
        }
        self.init(block: Int(r.block), iterations: Int(r.iterations), outcome: outcome)
    }
}

extension RowShard {
    public var wire: Newtonps_V1_RowShard {
        var s = Newtonps_V1_RowShard()
        s.index = Int32(index)
        s.split = split.rawValue
        s.offset = Int32(offset)
        switch rows {
        case .range(let r):
            var range = Newtonps_V1_Range()
            range.lower = Int64(r.lowerBound)
            range.upper = Int64(r.upperBound)
            s.range = range
        case .indices(let i):
            var indices = Newtonps_V1_Indices()
            indices.values = i.map(Int64.init)
            s.indices = indices
        }
        return s
    }

    public init(wire s: Newtonps_V1_RowShard) throws {
        guard let split = DataSplit(rawValue: s.split) else {
            throw TransportError(.invalidRequest, "shard \(s.index): unknown split '\(s.split)'")
        }
        let rows: RowSelection
        switch s.rows {
        case .range(let r):
            guard r.lower >= 0, r.upper >= r.lower, r.upper <= Int64(Int32.max) else {
                throw TransportError(.invalidRequest, "shard \(s.index): bad row range \(r.lower)..<\(r.upper)")
            }
            rows = .range(Int(r.lower)..<Int(r.upper))
        case .indices(let i):
            guard i.values.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
                throw TransportError(.invalidRequest, "shard \(s.index): a row index is out of range")
            }
            rows = .indices(i.values.map(Int.init))
        case nil:
            throw TransportError(.invalidRequest, "shard \(s.index) has no rows")
        }
        self.init(index: Int(s.index), split: split, rows: rows, offset: Int(s.offset))
    }
}

extension WorkerTask {
    public var wire: Newtonps_V1_WorkerTask {
        var t = Newtonps_V1_WorkerTask()
        t.shards = shards.map(\.wire)
        t.round = UInt64(round)
        t.shardsPerPush = UInt32(clamping: shardsPerPush)
        switch kind {
        case .evaluate(let point):
            var e = Newtonps_V1_WorkerTask.Evaluate()
            e.point = point.rawValue
            t.evaluate = e
        case .gradient(let point, let into):
            var g = Newtonps_V1_WorkerTask.Gradient()
            g.point = point.rawValue
            g.into = into.rawValue
            t.gradient = g
        case .gaussNewton(let point, let direction, let into):
            var g = Newtonps_V1_WorkerTask.GaussNewton()
            g.point = point.rawValue
            g.direction = direction.rawValue
            g.into = into.rawValue
            t.gaussNewton = g
        case .jacobian(let point):
            var j = Newtonps_V1_WorkerTask.Jacobian()
            j.point = point.rawValue
            t.jacobian = j
        case .hessian(let point, let direction, let into):
            var h = Newtonps_V1_WorkerTask.Hessian()
            h.point = point.rawValue
            h.direction = direction.rawValue
            h.into = into.rawValue
            t.hessian = h
        case .squaredGradient(let point, let into):
            var q = Newtonps_V1_WorkerTask.SquaredGradient()
            q.point = point.rawValue
            q.into = into.rawValue
            t.squaredGradient = q
        }
        return t
    }

    public init(wire t: Newtonps_V1_WorkerTask) throws {
        let kind: Kind
        switch t.kind {
        case .evaluate(let e): kind = .evaluate(point: try VectorName(wire: e.point))
        case .gradient(let g): kind = .gradient(point: try VectorName(wire: g.point), into: try VectorName(wire: g.into))
        case .gaussNewton(let g):
            kind = .gaussNewton(
                point: try VectorName(wire: g.point), direction: try VectorName(wire: g.direction), into: try VectorName(wire: g.into))
        case .jacobian(let j): kind = .jacobian(point: try VectorName(wire: j.point))
        case .hessian(let h):
            kind = .hessian(
                point: try VectorName(wire: h.point), direction: try VectorName(wire: h.direction), into: try VectorName(wire: h.into))
        case .squaredGradient(let q): kind = .squaredGradient(point: try VectorName(wire: q.point), into: try VectorName(wire: q.into))
        case nil: throw TransportError(.invalidRequest, "a worker task with no kind")
        }
        self.init(
            kind: kind, shards: try t.shards.map(RowShard.init(wire:)), round: Int(clamping: t.round),
            shardsPerPush: max(1, Int(t.shardsPerPush)))
    }
}

extension ShardResult {
    public var wire: Newtonps_V1_ShardResult {
        var r = Newtonps_V1_ShardResult()
        r.shard = Int32(shard)
        r.loss = loss
        r.correct = Int64(correct)
        if !outputs.isEmpty { r.outputs = WireTensor(outputs) }
        return r
    }

    public init(wire r: Newtonps_V1_ShardResult) throws {
        self.init(
            shard: Int(r.shard), loss: r.loss, correct: Int(r.correct),
            outputs: r.hasOutputs ? try r.outputs.floats("outputs of shard \(r.shard)") : [])
    }
}

extension IterationRecord {
    public var wire: Newtonps_V1_IterationRecord {
        var r = Newtonps_V1_IterationRecord()
        r.iteration = Int32(iteration)
        r.elapsedS = elapsedSeconds
        r.objective = objective
        r.gradNorm = gradientNorm
        r.cgIterations = Int32(cgIterations)
        r.lambda = lambda
        r.step = step
        r.lineSearchSteps = Int32(lineSearchSteps)
        if let testAccuracy { r.testAccuracy = testAccuracy }
        r.outcome = outcome.rawValue
        r.phaseS = phaseSeconds
        if let disagreement { r.disagreement = disagreement }
        if let zeroFraction { r.zeroFraction = zeroFraction }
        if let bytesSent { r.bytesSent = bytesSent }
        if let referenceGap { r.referenceGap = referenceGap }
        if let bytesMoved { r.bytesMoved = bytesMoved }
        return r
    }

    public init(wire r: Newtonps_V1_IterationRecord) throws {
        guard let outcome = Outcome(rawValue: r.outcome) else {
            throw TransportError(.invalidRequest, "unknown iteration outcome '\(r.outcome)'")
        }
        self.init(
            iteration: Int(r.iteration), elapsedSeconds: r.elapsedS, objective: r.objective, gradientNorm: r.gradNorm,
            cgIterations: Int(r.cgIterations), lambda: r.lambda, step: r.step, lineSearchSteps: Int(r.lineSearchSteps),
            testAccuracy: r.hasTestAccuracy ? r.testAccuracy : nil, outcome: outcome, phaseSeconds: r.phaseS,
            disagreement: r.hasDisagreement ? r.disagreement : nil, zeroFraction: r.hasZeroFraction ? r.zeroFraction : nil,
            bytesSent: r.hasBytesSent ? r.bytesSent : nil, referenceGap: r.hasReferenceGap ? r.referenceGap : nil,
            bytesMoved: r.hasBytesMoved ? r.bytesMoved : nil)
    }
}
