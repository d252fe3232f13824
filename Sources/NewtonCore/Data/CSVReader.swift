/// How to read a CSV file.
public struct CSVOptions: Sendable, Equatable {
    /// The label's field: 0 is the first, negative counts from the end (-1 is the last).
    public var labelColumn: Int
    /// Whether the first line is a header; nil detects one: a first line with a
    /// non-numeric field in a feature column.
    public var hasHeader: Bool?
    /// The field separator: one ASCII character that cannot occur in a number.
    public var separator: Character

    public init(labelColumn: Int = 0, hasHeader: Bool? = nil, separator: Character = ",") {
        self.labelColumn = labelColumn
        self.hasHeader = hasHeader
        self.separator = separator
    }
}

/// Reads CSV: every line one row of the same number of fields, one of them the
/// label (any text), the others numbers. Fields are trimmed of blanks and of one
/// pair of surrounding double quotes; quoted separators are not supported.
/// Blank lines are ignored.
enum CSVReader {
    static func read(_ path: String, options: CSVOptions, matching schema: TrainingSchema?) throws -> Dataset {
        let rows = try parse(FileIO.readAll(path), name: path, firstLine: 1, options: options, matching: schema)
        guard rows.count > 0 else { throw CoreError(.malformedData, "\(path) holds no data rows") }
        return try rows.dataset(matching: schema) { "\(path):\($0)" }
    }

    /// Parses `content`, a run of whole lines of the file `name` starting at
    /// line `firstLine`; its first non-blank line may be a header as
    /// `options` say.
    static func parse(_ content: [UInt8], name path: String, firstLine: Int, options: CSVOptions, matching schema: TrainingSchema?)
        throws -> RawRows
    {
        guard let separator = options.separator.asciiValue,
            !"0123456789+-.eE\"\n\r".contains(options.separator)
        else { throw CoreError(.invalidArgument, "'\(options.separator)' cannot separate CSV fields of \(path)") }

        var table = LabelTable()
        var lineOffsets = [Int]()
        var features = [Float]()
        var fieldCount = 0  // set by the first non-blank line
        var labelColumn = 0
        var fields = [Range<Int>]()

        try TextBytes.forEachLine(of: content, firstLine: firstLine) { text, line, number in
            let bytes = text.bytes
            guard text.trimmed(line).count > 0 else { return }
            fields.removeAll(keepingCapacity: true)
            var start = line.lowerBound
            for i in line where bytes[i] == separator {
                fields.append(unquoted(text, start..<i))
                start = i + 1
            }
            fields.append(unquoted(text, start..<line.upperBound))

            let isFirst = fieldCount == 0
            if isFirst {
                fieldCount = fields.count
                labelColumn = options.labelColumn < 0 ? fieldCount + options.labelColumn : options.labelColumn
                guard fieldCount >= 2, (0..<fieldCount).contains(labelColumn) else {
                    throw CoreError(
                        .invalidArgument,
                        "\(path):\(number): label column \(options.labelColumn) does not exist in a row of \(fieldCount) fields (a row needs the label and at least one feature)"
                    )
                }
                if let schema, fieldCount != schema.columns + 1 {
                    throw CoreError(
                        .shapeMismatch,
                        "\(path):\(number): \(fieldCount) fields, but the training set has \(schema.columns + 1) (\(schema.columns) features and the label)"
                    )
                }
            } else if fields.count != fieldCount {
                throw CoreError(.malformedData, "\(path):\(number): \(fields.count) fields, but the first line has \(fieldCount)")
            }

            let rowStart = features.count
            for (column, field) in fields.enumerated() where column != labelColumn {
                if let value = text.float(field) {
                    features.append(value)
                    continue
                }
                if isFirst, options.hasHeader != false {
                    features.removeSubrange(rowStart...)
                    return  // a header line
                }
                throw CoreError(.malformedData, "\(path):\(number): field \(column + 1) '\(text.string(field))' is not a finite number")
            }
            if isFirst, options.hasHeader == true {
                features.removeSubrange(rowStart...)
                return
            }
            let label = fields[labelColumn]
            guard !label.isEmpty else {
                throw CoreError(.malformedData, "\(path):\(number): the label (field \(labelColumn + 1)) is empty")
            }
            table.append(text.string(label), at: number)
            lineOffsets.append(line.lowerBound)
        }
        return RawRows(features: features, columns: max(fieldCount - 1, 0), labels: table, lineOffsets: lineOffsets)
    }

    /// `range` trimmed of blanks and of one pair of surrounding double quotes.
    private static func unquoted(_ text: TextBytes, _ range: Range<Int>) -> Range<Int> {
        let field = text.trimmed(range)
        guard field.count >= 2, text.bytes[field.lowerBound] == 0x22, text.bytes[field.upperBound - 1] == 0x22 else { return field }
        return (field.lowerBound + 1)..<(field.upperBound - 1)
    }
}
