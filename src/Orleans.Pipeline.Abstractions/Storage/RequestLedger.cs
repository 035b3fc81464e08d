namespace Orleans.Pipeline.Storage;

/// <summary>What the ledger knows of a request id when a request claims it.</summary>
public enum ClaimOutcome
{
    /// <summary>New: this request publishes.</summary>
    Claimed,

    /// <summary>The same content was published and stored: answer without publishing.</summary>
    Done,

    /// <summary>The same content is being published (by another gateway, or a gateway that died): wait, or take it over.</summary>
    InProgress,

    /// <summary>The id was used for different content.</summary>
    Conflict,
}

/// <summary>A claim taken over, with the tag its request was first published under (null for a claim recorded without one).</summary>
public sealed record TakeOver(RequestTag? Origin);

/// <summary>
/// Request ids shared by the cluster's gateways: a publish claims its id with a hash of its content before anything
/// is published, and marks it done once every event is stored, so that a retry through any gateway publishes nothing
/// twice. Callers are the gateways' own names for who sent the request (an API key's name).
/// </summary>
public interface IRequestLedger
{
    /// <summary>Claims the id for this request, published under <paramref name="origin"/>.</summary>
    Task<ClaimOutcome> ClaimAsync(string caller, string requestId, byte[] hash, int events, RequestTag origin, CancellationToken cancellationToken);

    /// <summary>
    /// Takes over a claim whose gateway has not finished it for <paramref name="lease"/> (it died or hangs): null when
    /// not taken; otherwise the tag the request was first published under.
    /// </summary>
    Task<TakeOver?> TakeOverAsync(string caller, string requestId, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Marks the request stored; true when another gateway took it over meanwhile (its copy may still be on its way).</summary>
    Task<bool> CompleteAsync(string caller, string requestId, CancellationToken cancellationToken);

    /// <summary>Frees an id whose request was refused before anything was published.</summary>
    Task ReleaseAsync(string caller, string requestId, CancellationToken cancellationToken);
}
