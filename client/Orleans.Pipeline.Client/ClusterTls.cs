using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;

namespace Orleans.Pipeline.Client;

/// <summary>Mutual TLS for the cluster's connections, as <see cref="ClusterTlsOptions"/> describe it; shared by silos and clients.</summary>
public static class ClusterTls
{
    /// <summary>This process's certificate, with its private key.</summary>
    public static X509Certificate2 LoadCertificate(ClusterTlsOptions options)
    {
        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(options.CertificatePath!, options.CertificatePassword);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException)
        {
            throw new ArgumentException($"Pipeline:Tls:CertificatePath '{options.CertificatePath}' could not be read as a PFX with the given password: {e.Message}", e);
        }
    }

    /// <summary>Both sides present a certificate; a peer is accepted only if its certificate chains to the CA (or is the cluster's own certificate).</summary>
    public static void Configure(TlsOptions tls, ClusterTlsOptions options, X509Certificate2 own)
    {
        tls.LocalCertificate = own;
        tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        var ca = options.CaCertificatePath is { Length: > 0 } path ? X509CertificateLoader.LoadCertificateFromFile(path) : null;
        tls.RemoteCertificateValidation = (certificate, _, _) => Trusted(certificate, own, ca);
    }

    /// <summary>
    /// Whether a peer's certificate is trusted: it chains to <paramref name="ca"/>, or without a CA it is
    /// <paramref name="own"/> itself. Names are not checked: silos are reached by address.
    /// </summary>
    public static bool Trusted(X509Certificate2? certificate, X509Certificate2 own, X509Certificate2? ca)
    {
        if (certificate is null) return false;
        if (ca is null) return certificate.RawData.AsSpan().SequenceEqual(own.RawData);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
