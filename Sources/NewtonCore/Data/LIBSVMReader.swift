/// Reads LIBSVM text: one row per line, `label index:value index:value ...`,
/// with 1-based, strictly increasing indices; absent features are 0. Blank
/// lines and anything after `#` are ignored, as are `qid:` tokens. Labels must
/// be numbers. A training file has as many columns as its largest index.
enum LIBSVMReader {
    /// At most this many feature columns: rows are held dense, so a stray
    /// index like 2147483647 would ask for gigabytes a row.
    static let maxColumns = 1 << 20

    static func read(_ path: String, matching schema: TrainingSchema?) throws -> Dataset {
        let rows = try parse(FileIO.readAll(path), name: path, firstLine: 1, matching: schema)
        guard rows.count > 0 else { throw CoreError(.malformedData, "\(path) holds no data rows") }
        guard rows.columns > 0 else { throw CoreError(.malformedData, "\(path) has no feature values in any row") }
        try rows.labels.requireNumeric { "\(path):\($0)" }
        return try rows.dataset(matching: schema) { "\(path):\($0)" }
    }

    /// Parses `content`, a run of whole lines of the file `name` starting at
    /// line `firstLine`. Rows have `schema`'s columns, or as many as the
    /// largest index seen.
    static func parse(_ content: [UInt8], name path: String, firstLine: Int, matching schema: TrainingSchema?) throws -> RawRows {
        var table = LabelTable()
        var lineOffsets = [Int]()
        var rowStarts = [0]
        var indices = [Int32]()
        var values = [Float]()
        let columnLimit = schema?.columns ?? Int(Int32.max)
        var columns = schema?.columns ?? 0

        try TextBytes.forEachLine(of: content, firstLine: firstLine) { text, line, number in
            func malformed(_ what: String) -> CoreError {
                CoreError(.malformedData, "\(path):\(number): \(what)")
            }
            let bytes = text.bytes
            var end = line.upperBound
            if let hash = line.first(where: { bytes[$0] == 0x23 }) { end = hash }  // '#'
            var position = line.lowerBound

            /// The next blank-separated token, or nil at the end of the line.
            func nextToken() -> Range<Int>? {
                while position < end, TextBytes.isBlank(bytes[position]) { position += 1 }
                guard position < end else { return nil }
                let start = position
                while position < end, !TextBytes.isBlank(bytes[position]) { position += 1 }
                return start..<position
            }

            guard let labelToken = nextToken() else { return }  // blank or comment-only line
            table.append(text.string(labelToken), at: number)
            lineOffsets.append(line.lowerBound)
            var previous = 0
            while let token = nextToken() {
                var cursor = token.lowerBound
                var index = 0
                while cursor < token.upperBound, bytes[cursor] >= 0x30, bytes[cursor] <= 0x39 {
                    if index < 1 << 40 { index = index * 10 + Int(bytes[cursor] &- 0x30) }
                    cursor += 1
                }
                guard cursor < token.upperBound, bytes[cursor] == 0x3A else {  // ':'
                    let tokenText = text.string(token)
                    if tokenText.hasPrefix("qid:") { continue }
                    if tokenText.contains(":") { throw malformed("feature index in '\(tokenText)' is not a positive integer") }
                    throw malformed("'\(tokenText)' is missing the colon of index:value")
                }
                guard cursor > token.lowerBound else { throw malformed("'\(text.string(token))' has no feature index before the colon") }
                guard index > 0 else { throw malformed("feature index 0 in '\(text.string(token))': indices start at 1") }
                guard index > previous else {
                    throw malformed("feature index \(index) follows index \(previous): indices must be strictly increasing")
                }
                guard schema != nil || index <= maxColumns else {
                    throw malformed(
                        "feature index \(text.string(token.lowerBound..<cursor)) exceeds the cap of \(maxColumns) columns (LIBSVMReader.maxColumns)"
                    )
                }
                guard index <= columnLimit else {
                    throw CoreError(
                        .shapeMismatch,
                        "\(path):\(number): feature index \(text.string(token.lowerBound..<cursor)) exceeds the \(columnLimit) columns of the training set"
                    )
                }
                guard let value = text.float((cursor + 1)..<token.upperBound) else {
                    throw malformed("value '\(text.string((cursor + 1)..<token.upperBound))' of feature \(index) is not a finite number")
                }
                previous = index
                indices.append(Int32(index - 1))
                values.append(value)
            }
            columns = max(columns, previous)
            rowStarts.append(indices.count)
        }

        let rows = table.rowCount
        var features = [Float](repeating: 0, count: rows * columns)
        features.withUnsafeMutableBufferPointer { dense in
            for row in 0..<rows {
                for k in rowStarts[row]..<rowStarts[row + 1] {
                    dense[row * columns + Int(indices[k])] = values[k]
                }
            }
        }
        return RawRows(features: features, columns: columns, labels: table, lineOffsets: lineOffsets)
    }
}
