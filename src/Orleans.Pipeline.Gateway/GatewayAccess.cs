using System.Security.Cryptography;
using System.Text;
using Grpc.Core;

namespace Orleans.Pipeline.Gateway;

/// <summary>What a call wants to do with a pipeline.</summary>
internal enum Access
{
    Publish,
    Read,
}

/// <summary>An authenticated caller: its name (the API key's name, or the peer's address when keys are off).</summary>
internal sealed record Caller(string Name, ApiKeySettings? Key)
{
    public bool May(Access access, string pipeline)
    {
        if (Key is null) return true;
        var allowed = access == Access.Publish ? Key.Publish : Key.Read;
        return allowed.Contains("*") || allowed.Contains(pipeline);
    }
}

/// <summary>
/// API-key authentication and per-pipeline permissions. Keys are compared by their SHA-256 in constant time; the
/// key itself is neither stored nor logged.
/// </summary>
internal sealed class GatewayAccess
{
    private readonly (byte[] Hash, string Name, ApiKeySettings Settings)[] _keys;

    public GatewayAccess(GatewayOptions options) =>
        _keys = options.ApiKeys.Select(k => (Convert.FromHexString(k.Value.Hash["sha256:".Length..]), k.Key, k.Value)).ToArray();

    /// <summary>No keys configured: every caller may do everything.</summary>
    public bool Open => _keys.Length == 0;

    public Caller Authenticate(ServerCallContext context)
    {
        if (Open) return new Caller(PeerHost(context.Peer), null);
        var presented = context.RequestHeaders.GetValue("x-api-key");
        if (presented is null && context.RequestHeaders.GetValue("authorization") is { } authorization &&
            authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = authorization["Bearer ".Length..].Trim();
        }

        if (string.IsNullOrEmpty(presented))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "an API key is required: send it in the 'x-api-key' header or as 'authorization: Bearer <key>'"));

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        foreach (var (expected, name, settings) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, expected)) return new Caller(name, settings);
        }

        throw new RpcException(new Status(StatusCode.Unauthenticated, "the API key is not valid"));
    }

    public static void Authorize(Caller caller, Access access, string pipeline)
    {
        if (!caller.May(access, pipeline))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"API key '{caller.Name}' may not {(access == Access.Publish ? "publish to" : "read")} pipeline '{pipeline}'"));
        }
    }

    /// <summary>"ipv4:127.0.0.1:5555" → "127.0.0.1": callers without keys are told apart by address.</summary>
    private static string PeerHost(string peer)
    {
        var colon = peer.IndexOf(':', StringComparison.Ordinal);
        var last = peer.LastIndexOf(':');
        return colon >= 0 && last > colon ? peer[(colon + 1)..last] : peer;
    }
}
