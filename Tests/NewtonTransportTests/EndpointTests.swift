import NewtonTransport
import XCTest

final class EndpointTests: XCTestCase {
    func testParsesHostsPortsAndIPv6() throws {
        XCTAssertEqual(try Endpoint(parsing: "0.0.0.0:9090"), Endpoint(host: "0.0.0.0", port: 9090))
        XCTAssertEqual(try Endpoint(parsing: "[::1]:9091"), Endpoint(host: "::1", port: 9091))
        XCTAssertEqual(try Endpoint(parsing: ":0"), Endpoint(host: "0.0.0.0", port: 0))
        XCTAssertEqual(try Endpoint(parsing: "driver:7070"), Endpoint(host: "driver", port: 7070))
        XCTAssertEqual(Endpoint(host: "::1", port: 7).description, "[::1]:7")
        for bad in ["9090", "host:", "host:x", "host:70000", "::1:9090", "[::1:9090", "[]:1"] {
            XCTAssertThrowsError(try Endpoint(parsing: bad), bad)
        }
    }
}
