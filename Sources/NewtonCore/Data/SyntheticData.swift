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
        let rows = max(rows, 0)
        let columns = max(features, 1)
        let classes = max(classes, 1)
        var random = SeededGenerator(seed: seed)
        let sigma = Double(noise)
        let radius = max(2, Double(classes) / 2)  // keeps neighbouring blobs apart
        let phase = 2 * Double.pi * random.nextUnit()

        // An orthonormal pair spanning the plane of the blobs.
        var u = [Double]()
        var v = [Double]()
        if columns > 1 {
            u = (0..<columns).map { _ in random.nextGaussian() }
            v = (0..<columns).map { _ in random.nextGaussian() }
            normalize(&u)
            let uv = dot(u, v)
            for j in 0..<columns { v[j] -= uv * u[j] }
            normalize(&v)
        }

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
            let pu = dot(point, u) - a
            let pv = dot(point, v) - b
            for j in 0..<columns { x.append(Float(point[j] - pu * u[j] - pv * v[j])) }
        }
        return Dataset(validated: x, labels: labels, columns: columns, classNames: (0..<classes).map(String.init))
    }

    /// Writes `data` as LIBSVM text: the class name, then the non-zero features
    /// as 1-based `index:value`, one row per line.
    public static func writeLIBSVM(_ data: Dataset, to path: String) throws {
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
        try FileIO.writeAll(text, to: path)
    }

    /// Writes `data` as CSV with the class name in the first field, optionally
    /// after a header line `label,x1,x2,…`.
    public static func writeCSV(_ data: Dataset, to path: String, header: Bool = false) throws {
        var text = [UInt8]()
        if header {
            text.append(contentsOf: "label".utf8)
            for j in 1...data.columns { text.append(contentsOf: ",x\(j)".utf8) }
            text.append(0x0A)
        }
        for row in 0..<data.rows {
            text.append(contentsOf: data.classNames[Int(data.labels[row])].utf8)
            for value in data.features[(row * data.columns)..<((row + 1) * data.columns)] {
                text.append(contentsOf: ",\(value)".utf8)
            }
            text.append(0x0A)
        }
        try FileIO.writeAll(text, to: path)
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
    }

    private static func normalize(_ a: inout [Double]) {
        let norm = dot(a, a).squareRoot()
        for j in a.indices { a[j] /= norm }
    }
}
