import Crypto
import Foundation
import SwiftASN1
import X509

/// A private certificate authority for one cluster and a certificate per
/// role, written as PEM files: `ca.pem` (and its key `ca-key.pem`), then
/// `driver`, `server`, `worker`, `agent` and `client` `.pem` with `-key.pem`. Every
/// role certificate serves and authenticates (server and client auth) and
/// names every given host, so each role can use its own for mutual TLS.
/// Keys are ECDSA P-256 and written readable by their owner only.
public enum ClusterCertificates {
    public static let roles = ["driver", "server", "worker", "agent", "client"]
    /// Always named, beside the hosts given: a cluster on one machine.
    public static let loopbackHosts = ["localhost", "127.0.0.1"]

    /// The identity of `role` in `directory`, as `make` writes it.
    public static func identity(_ role: String, in directory: String) throws -> TLSIdentity {
        try TLSIdentity(
            certificate: "\(directory)/\(role).pem", key: "\(directory)/\(role)-key.pem", ca: "\(directory)/ca.pem")
    }

    /// Makes the CA and the role certificates in `directory` (created if
    /// needed), valid for `days` from an hour ago, naming `hosts` (DNS names
    /// or IP addresses) and the loopback ones.
    public static func make(in directory: String, hosts: [String], days: Int = 365) throws {
        guard days >= 1 else { throw TransportError(.invalidRequest, "certificates must be valid for at least a day, got \(days)") }
        let names = loopbackHosts + hosts.filter { !loopbackHosts.contains($0) }
        let alternativeNames = try names.map(generalName)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TransportError(.invalidRequest, "cannot create the certificate directory \(directory)", cause: error)
        }
        let start = Date().addingTimeInterval(-3600)
        let end = start.addingTimeInterval(Double(days) * 86_400)
        do {
            let caKey = P256.Signing.PrivateKey()
            let caName = try DistinguishedName { CommonName("newtonps cluster CA") }
            let ca = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey), notValidBefore: start, notValidAfter: end,
                issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                }, issuerPrivateKey: .init(caKey))
            try write(ca.serializeAsPEM().pemString, to: "\(directory)/ca.pem", secret: false)
            try write(caKey.pemRepresentation, to: "\(directory)/ca-key.pem", secret: true)
            for role in roles {
                let key = P256.Signing.PrivateKey()
                let certificate = try Certificate(
                    version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: start, notValidAfter: end,
                    issuer: caName, subject: try DistinguishedName { CommonName("newtonps \(role)") },
                    signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.notCertificateAuthority)
                        Critical(KeyUsage(digitalSignature: true))
                        try ExtendedKeyUsage([.serverAuth, .clientAuth])
                        SubjectAlternativeNames(alternativeNames)
                    }, issuerPrivateKey: .init(caKey))
                try write(certificate.serializeAsPEM().pemString, to: "\(directory)/\(role).pem", secret: false)
                try write(key.pemRepresentation, to: "\(directory)/\(role)-key.pem", secret: true)
            }
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(.invalidRequest, "cannot make the cluster certificates in \(directory)", cause: error)
        }
    }

    /// An IP address SAN for an address, else a DNS name.
    private static func generalName(_ host: String) throws -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v4) { ArraySlice($0) }))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v6) { ArraySlice($0) }))
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
        guard !host.isEmpty, host.count <= 253, host.allSatisfy(allowed.contains) else {
            throw TransportError(.invalidRequest, "'\(host)' is neither an IP address nor a DNS name")
        }
        return .dnsName(host)
    }

    private static func write(_ text: String, to path: String, secret: Bool) throws {
        try writeFile(Array(text.utf8), to: path, mode: secret ? 0o600 : 0o644)
    }
}

/// Writes `bytes` to `path` with `mode` from before the first byte is
/// written (an existing file is narrowed first); never follows a symlink.
func writeFile(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode)
    guard fd >= 0 else { throw TransportError(.invalidRequest, "cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard fchmod(fd, mode) == 0, write(fd, bytes, bytes.count) == bytes.count else {
        throw TransportError(.invalidRequest, "cannot write \(path): \(String(cString: strerror(errno)))")
    }
}
