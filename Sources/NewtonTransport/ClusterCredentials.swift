import Foundation
import GRPCNIOTransportHTTP2Posix
import X509

/// What a process presents to its peers and requires of them: the cluster
/// token, checked on every call, and with TLS its certificate: mutual TLS,
/// so every connection is encrypted and both ends' certificates must chain
/// to the cluster's CA.
public struct ClusterCredentials: Sendable {
    public var token: ClusterToken?
    public var tls: TLSIdentity?

    public init(token: ClusterToken?, tls: TLSIdentity?) {
        self.token = token
        self.tls = tls
    }

    /// No token and plaintext: for loopback benchmarks and tests only.
    public static let open = ClusterCredentials(token: nil, tls: nil)

    var serverSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        guard let tls else { return .plaintext }
        return .mTLS(certificateChain: [.file(path: tls.certificate, format: .pem)], privateKey: .file(path: tls.key, format: .pem)) {
            $0.trustRoots = .certificates([.file(path: tls.ca, format: .pem)])
            // Clients are peers and people, not hosts: their certificate must
            // chain to the CA; their address is not checked against it.
            $0.clientCertificateVerification = .noHostnameVerification
        }
    }

    var clientSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        guard let tls else { return .plaintext }
        return .mTLS(certificateChain: [.file(path: tls.certificate, format: .pem)], privateKey: .file(path: tls.key, format: .pem)) {
            $0.trustRoots = .certificates([.file(path: tls.ca, format: .pem)])
            $0.serverCertificateVerification = .fullVerification
        }
    }
}

/// A process's TLS identity: its certificate and private key (PEM files)
/// and the CA certificate every peer's certificate must chain to.
public struct TLSIdentity: Sendable, Equatable {
    public let certificate: String
    public let key: String
    public let ca: String

    /// Checks that the three files exist and hold what they should, so a
    /// wrong path fails at start with its name rather than at the first call.
    public init(certificate: String, key: String, ca: String) throws {
        for (what, path) in [("certificate", certificate), ("CA certificate", ca)] {
            _ = try Self.read(path, what) { try Certificate(pemEncoded: $0) }
        }
        _ = try Self.read(key, "private key") { try Certificate.PrivateKey(pemEncoded: $0) }
        self.certificate = certificate
        self.key = key
        self.ca = ca
    }

    private static func read<T>(_ path: String, _ what: String, _ parse: (String) throws -> T) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TransportError(.invalidRequest, "cannot read the TLS \(what) \(path)")
        }
        do { return try parse(String(decoding: data, as: UTF8.self)) } catch {
            throw TransportError(.invalidRequest, "\(path) does not hold a PEM \(what)", cause: error)
        }
    }
}
