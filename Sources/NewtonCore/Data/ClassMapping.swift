/// What a test or validation file must agree with: the training set's column
/// count and classes.
struct TrainingSchema {
    let columns: Int
    let classNames: [String]

    init(_ training: Dataset) {
        self.init(columns: training.columns, classNames: training.classNames)
    }

    init(columns: Int, classNames: [String]) {
        self.columns = columns
        self.classNames = classNames
    }
}

/// Rows as a reader parsed them, before their labels become class indices.
struct RawRows {
    /// Row-major, `columns` per row.
    var features: [Float]
    var columns: Int
    var labels: LabelTable
    /// Per row, the byte offset of its line in the parsed text (empty for binary formats).
    var lineOffsets: [Int] = []

    var count: Int { labels.rowCount }

    /// The rows as a data set with the training set's classes (`schema`) or,
    /// without one, classes from these labels.
    func dataset(matching schema: TrainingSchema?, describe location: (Int) -> String) throws -> Dataset {
        let (names, classes) = try labels.classes(matching: schema, describe: location)
        return Dataset(validated: features, labels: classes, columns: columns, classNames: names)
    }
}

/// The labels of one file as read, row by row, before they become class indices.
/// Shared by every reader so that all formats map labels to classes the same way:
///
/// - If every label is a number, labels that are the same number ("1", "+1",
///   "1.0") are one class, classes are in increasing numeric order, and class
///   names are the numbers written plainly ("1", "-1", "0.5").
/// - Otherwise every distinct label string is a class, in lexicographic order.
struct LabelTable {
    /// Distinct labels in the order first seen, and where each was first seen.
    private var distinct: [String] = []
    private var firstSeen: [Int] = []
    private var idByLabel: [String: Int32] = [:]
    /// Per row, the index of its label in `distinct`.
    private var rowIDs: [Int32] = []

    var rowCount: Int { rowIDs.count }

    /// Adds the distinct labels of `other` that this table lacks, with where
    /// they were first seen; rows are not added. Builds one file's label set
    /// from its pieces.
    mutating func addLabels(of other: LabelTable) {
        for (label, position) in zip(other.distinct, other.firstSeen) where idByLabel[label] == nil {
            idByLabel[label] = Int32(distinct.count)
            distinct.append(label)
            firstSeen.append(position)
        }
    }

    /// Records the label of the next row; `position` is the line number or record
    /// index that error messages should point at.
    mutating func append(_ label: String, at position: Int) {
        if let id = idByLabel[label] {
            rowIDs.append(id)
            return
        }
        let id = Int32(distinct.count)
        idByLabel[label] = id
        distinct.append(label)
        firstSeen.append(position)
        rowIDs.append(id)
    }

    /// Throws naming the first label that is not a number.
    func requireNumeric(describe location: (Int) -> String) throws {
        if let bad = distinct.indices.first(where: { Self.numericValue(distinct[$0]) == nil }) {
            throw CoreError(.malformedData, "\(location(firstSeen[bad])): label '\(distinct[bad])' is not a number")
        }
    }

    /// Class names and per-row class indices: from these labels alone for a
    /// training file, or with the training set's classes for a test file, where
    /// a label the training set does not have is an error naming where it occurs.
    func classes(matching schema: TrainingSchema?, describe location: (Int) -> String) throws -> (names: [String], labels: [Int32]) {
        let names = schema?.classNames ?? Self.classNames(of: distinct)
        let numeric = names.allSatisfy { Self.numericValue($0) != nil }
        let key: (String) -> String? = numeric ? { Self.numericValue($0).map(Self.canonicalName) } : { $0 }
        var classByKey = [String: Int32]()
        for (index, name) in names.enumerated() {
            if let k = key(name) { classByKey[k] = Int32(index) }
        }
        var classOfID = [Int32]()
        classOfID.reserveCapacity(distinct.count)
        for (id, label) in distinct.enumerated() {
            guard let found = key(label).flatMap({ classByKey[$0] }) else {
                throw CoreError(
                    .malformedData,
                    "\(location(firstSeen[id])): label '\(label)' is not one of the training set's classes (\(names.joined(separator: ", ")))"
                )
            }
            classOfID.append(found)
        }
        return (names, rowIDs.map { classOfID[Int($0)] })
    }

    private static func classNames(of labels: [String]) -> [String] {
        let values = labels.compactMap(numericValue)
        if values.count == labels.count {
            return Set(values).sorted().map(canonicalName)
        }
        return Set(labels).sorted()
    }

    /// The label as a finite number, or nil.
    static func numericValue(_ label: String) -> Double? {
        guard let value = Double(label), value.isFinite else { return nil }
        return value == 0 ? 0 : value  // one class for -0 and 0
    }

    /// How a numeric class is named: integers without a fraction ("1", not "1.0").
    static func canonicalName(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
