using System.Security.Cryptography;
using System.Text;

namespace Orleans.Pipeline.Gateway;

/// <summary>How API keys are stored: <c>sha256:</c> and the lower-case hex SHA-256 of the key's UTF-8 bytes.</summary>
public static class ApiKeyHash
{
    private const string Prefix = "sha256:";

    /// <summary>The stored form of <paramref name="key"/>.</summary>
    public static string Of(string key) => Prefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Whether <paramref name="hash"/> is in the stored form.</summary>
    public static bool IsValid(string? hash) =>
        hash is not null && hash.Length == Prefix.Length + 64 && hash.StartsWith(Prefix, StringComparison.Ordinal) &&
        hash.AsSpan(Prefix.Length).ContainsAnyExcept("0123456789abcdef") is false;

    /// <summary>A new random key (URL-safe, 256 bits) for a caller.</summary>
    public static string NewKey() => "opk_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
