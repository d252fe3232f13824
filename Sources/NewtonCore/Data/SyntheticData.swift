#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Generated data sets for tests and demonstrations, and writers that store a
/// data set as LIBSVM or CSV text.
public enum SyntheticData {
    /// A classification problem that a small ReLU network learns almost
    /// perfectly but a linear model cannot: in a random plane of feature space,
    /// `2 · classes` Gaussian blobs (standard deviation `noise`) sit evenly on a
    /// circle, and opposite blobs share a class, so every class's mean is the
    /// origin. The other directions hold standard normal noise. With one
    /// feature, the blobs sit on a line with classes repeating 0, 1, …, 0, 1, ….
    /// Learnable when rows are plentiful relative to features (say 100×).
    ///
    /// The same seed gives the same data. `features` and `classes` below 1 count
    /// as 1, negative `rows` as 0. Class names are "0", "1", ….
    public static func classification(rows: Int, features: Int, classes: Int, seed: UInt64, noise: Float = 0.3) -> Dataset {
        var generator = Generator(features: features, classes: classes, seed: seed, noise: noise)
        return generator.next(max(rows, 0))
    }

    /// `classification`'s rows a piece at a time: the pieces of one generator
    /// joined are the rows `classification` gives for the same arguments.
    public struct Generator {
        let columns: Int
        let classes: Int
        let sigma: Double
        let radius: Double
        let phase: Double
        /// An orthonormal pair spanning the plane of the blobs.
        let u: [Double]
        let v: [Double]
        var random: SeededGenerator

        public init(features: Int, classes: Int, seed: UInt64, noise: Float = 0.3) {
            let columns = max(features, 1)
            let classes = max(classes, 1)
            var random = SeededGenerator(seed: seed)
            phase = 2 * Double.pi * random.nextUnit()
            var u = [Double]()
            var v = [Double]()
            if columns > 1 {
                u = (0..<columns).map { _ in random.nextGaussian() }
                v = (0..<columns).map { _ in random.nextGaussian() }
                SyntheticData.normalize(&u)
                let uv = SyntheticData.dot(u, v)
                for j in 0..<columns { v[j] -= uv * u[j] }
                SyntheticData.normalize(&v)
            }
            self.columns = columns
            self.classes = classes
            self.u = u
            self.v = v
            self.random = random
            sigma = Double(noise)
            radius = max(2, Double(classes) / 2)  // keeps neighbouring blobs apart
        }

        /// The next `rows` rows.
        public mutating func next(_ rows: Int) -> Dataset {
            var x = [Float]()
            x.reserveCapacity(rows * columns)
            var labels = [Int32]()
            labels.reserveCapacity(rows)
            var point = [Double](repeating: 0, count: columns)
            for _ in 0..<rows {
                let blob = Int(random.next() % UInt64(2 * classes))
                labels.append(Int32(blob % classes))
                if columns == 1 {
                    let center = Double(2 * blob - 2 * classes + 1)  // spaced 2 apart around 0
                    x.append(Float(center + sigma * random.nextGaussian()))
                    continue
                }
                let angle = phase + Double.pi * Double(blob) / Double(classes)
                let a = radius * cos(angle) + sigma * random.nextGaussian()
                let b = radius * sin(angle) + sigma * random.nextGaussian()
                for j in 0..<columns { point[j] = random.nextGaussian() }
                let pu = SyntheticData.dot(point, u) - a
                let pv = SyntheticData.dot(point, v) - b
                for j in 0..<columns { x.append(Float(point[j] - pu * u[j] - pv * v[j])) }
            }
            return Dataset(validated: x, labels: labels, columns: columns, classNames: (0..<classes).map(String.init))
        }

        /// Writes the next `rows` rows to `path` as `format` (LIBSVM, CSV
        /// with a header, or `.npy` with the label first), a piece at a time,
        /// so files larger than memory can be made.
        public mutating func write(_ rows: Int, as format: DataFormat, to path: String) throws {
            guard format != .idx else { throw CoreError(.invalidArgument, "synthetic data is written as libsvm, csv or npy, not idx") }
            let piece = max(1, (1 << 22) / columns)
            try FileIO.writeStreaming(to: path) { write in
                switch format {
                case .csv: try write(SyntheticData.csvHeader(columns: columns))
                case .npy: try write(SyntheticData.npyHeader(rows: rows, width: columns + 1))
                case .libsvm, .idx: break
                }
                var done = 0
                while done < rows {
                    let data = next(min(piece, rows - done))
                    try write(SyntheticData.encode(data, as: format))
                    done += data.rows
                }
            }
        }
    }

    /// Writes `data` as LIBSVM text: the class name, then the non-zero features
    /// as 1-based `index:value`, one row per line.
    public static func writeLIBSVM(_ data: Dataset, to path: String) throws {
        try FileIO.writeAll(libsvmText(data), to: path)
    }

    /// Writes `data` as CSV with the class name in the first field, optionally
    /// after a header line `label,x1,x2,…`.
    public static func writeCSV(_ data: Dataset, to path: String, header: Bool = false) throws {
        try FileIO.writeAll((header ? csvHeader(columns: data.columns) : []) + csvText(data), to: path)
    }

    /// Writes `data` as a NumPy `.npy` array of float32, one row per example
    /// with its class first (classes must be numbers).
    public static func writeNPY(_ data: Dataset, to path: String) throws {
        try FileIO.writeAll(npyHeader(rows: data.rows, width: data.columns + 1) + npyRows(data), to: path)
    }

    /// `data`'s rows in `format` (LIBSVM, CSV without header, or `.npy` rows).
    static func encode(_ data: Dataset, as format: DataFormat) -> [UInt8] {
        switch format {
        case .csv: csvText(data)
        case .npy: npyRows(data)
        case .libsvm, .idx: libsvmText(data)
        }
    }

    /// A version 1.0 `.npy` header for a C-order float32 array of `rows × width`.
    static func npyHeader(rows: Int, width: Int) -> [UInt8] {
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(width)), }".utf8)
        let unpadded = 10 + dict.count + 1
        dict += repeatElement(0x20, count: (64 - unpadded % 64) % 64) + [0x0A]
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(dict.count & 0xFF), UInt8(dict.count >> 8)] + dict
    }

    /// Rows as little-endian float32: the class (its name as a number), then the features.
    static func npyRows(_ data: Dataset) -> [UInt8] {
        let classes = data.classNames.map { Float($0) ?? .nan }
        var values = [Float]()
        values.reserveCapacity(data.rows * (data.columns + 1))
        for row in 0..<data.rows {
            values.append(classes[Int(data.labels[row])])
            values += data.features[(row * data.columns)..<((row + 1) * data.columns)]
        }
        return values.withUnsafeBytes { Array($0) }
    }

    static func libsvmText(_ data: Dataset) -> [UInt8] {
        var text = [UInt8]()
        for row in 0..<data.rows {
            text.append(contentsOf: data.classNames[Int(data.labels[row])].utf8)
            for j in 0..<data.columns {
                let value = data.features[row * data.columns + j]
                guard value != 0 else { continue }
                text.append(contentsOf: " \(j + 1):\(value)".utf8)
            }
            text.append(0x0A)
        }
        return text
    }

    static func csvHeader(columns: Int) -> [UInt8] {
        Array(("label" + (1...columns).map { ",x\($0)" }.joined() + "\n").utf8)
    }

    static func csvText(_ data: Dataset) -> [UInt8] {
        var text = [UInt8]()
        for row in 0..<data.rows {
            text.append(contentsOf: data.classNames[Int(data.labels[row])].utf8)
            for value in data.features[(row * data.columns)..<((row + 1) * data.columns)] {
                text.append(contentsOf: ",\(value)".utf8)
            }
            text.append(0x0A)
        }
        return text
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func normalize(_ a: inout [Double]) {
        let norm = dot(a, a).squareRoot()
        for j in a.indices { a[j] /= norm }
    }
}
