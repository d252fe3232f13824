import NewtonCore
import NewtonProto
import NewtonTraining
import NewtonTransport
import XCTest

/// Hostile messages decode to a named error, never a trap or a huge allocation.
final class WireConversionsTests: XCTestCase {
    func testOnlyTheTrainersVectorNamesAreAccepted() throws {
        XCTAssertEqual(try VectorName(wire: "weights"), .weights)
        XCTAssertEqual(try VectorName(wire: "cg-iterate-3"), VectorName.cgIterate(3))
        for name in ["", "attacker-vector", "cg-iterate-999", String(repeating: "x", count: 10_000)] {
            XCTAssertThrowsError(try VectorName(wire: name)) { error in
                XCTAssertEqual((error as? TransportError)?.code, .invalidRequest)
                XCTAssertTrue("\(error)".contains("VectorName.known"), "\(error)")
                XCTAssertLessThan("\(error)".count, 200, "the error echoes at most a prefix of the name")
            }
        }
        var op = Newtonps_V1_VectorOp()
        op.fill.target = "bigger-than-it-looks"
        XCTAssertThrowsError(try VectorOp(wire: op))
    }

    func testSyntheticSizesThatWouldOverflowAreRefused() {
        for (train, test, features) in [(Int64.max, Int64.max, Int32(1)), (100_000_000, 0, Int32.max), (Int64.max, 0, 2)] {
            var wire = Newtonps_V1_DataDescriptor()
            wire.scaling = "standard"
            wire.synthetic.trainRows = train
            wire.synthetic.testRows = test
            wire.synthetic.features = features
            wire.synthetic.classes = 2
            XCTAssertThrowsError(try DataDescriptor(wire: wire)) { error in
                XCTAssertTrue("\(error)".contains("maxSynthetic"), "\(error)")
            }
        }
    }
}
