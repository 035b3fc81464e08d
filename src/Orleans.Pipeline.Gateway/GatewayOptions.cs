namespace Orleans.Pipeline.Gateway;

/// <summary>The gateway's settings: configuration section <c>Pipeline:Gateway</c>.</summary>
public sealed class GatewayOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Pipeline:Gateway";

    /// <summary>Whether the silo hosts the gateway (the <c>gateway</c> command always does).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Where the gateway listens: gRPC and JSON on one port. With <c>https://</c> (the certificate under
    /// <c>Pipeline:Gateway:Certificate</c>) the port speaks HTTP/2 and HTTP/1.1; in clear text it speaks HTTP/2 only
    /// (gRPC clients, <c>curl --http2-prior-knowledge</c>), since only TLS can negotiate between the two.
    /// </summary>
    public string Url { get; set; } = "http://0.0.0.0:5080";

    /// <summary>Optionally, a clear-text HTTP/1.1 port for JSON clients that cannot speak HTTP/2 (e.g. <c>http://0.0.0.0:5081</c>).</summary>
    public string? Http1Url { get; set; }

    /// <summary>TLS: a PFX certificate file and its password, for an <c>https://</c> <see cref="Url"/>.</summary>
    public CertificateSettings? Certificate { get; set; }

    /// <summary>Events per publish request at most.</summary>
    public int MaxEventsPerRequest { get; set; } = 10_000;

    /// <summary>Size of one request message at most, in bytes.</summary>
    public int MaxRequestBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Each caller's sustained rate, events per second (a token bucket).</summary>
    public int EventsPerSecondPerCaller { get; set; } = 100_000;

    /// <summary>Each caller's burst: events it may send at once above the sustained rate.</summary>
    public int BurstPerCaller { get; set; } = 200_000;

    /// <summary>Each caller's sustained rate of reads (queries and new subscriptions) per second, with a burst of twice that.</summary>
    public int ReadsPerSecondPerCaller { get; set; } = 1_000;

    /// <summary>Subscriptions one caller may hold open at once.</summary>
    public int MaxSubscriptionsPerCaller { get; set; } = 16;

    /// <summary>Serve gRPC reflection (what tools like grpcurl use to discover the API); production may turn it off.</summary>
    public bool EnableReflection { get; set; } = true;

    /// <summary>Events being published through this gateway at once, all callers together; beyond it requests are shed.</summary>
    public int MaxInFlightEvents { get; set; } = 100_000;

    /// <summary>
    /// How long a publish call waits for its events to be stored before it answers UNAVAILABLE (the events stay
    /// accepted and are still delivered; a retry with the same request id waits for them again).
    /// </summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a request id is remembered (bound to its request's content): a retry within it publishes nothing
    /// twice. In PostgreSQL mode the ids are shared by every gateway of the cluster.
    /// </summary>
    public TimeSpan RequestIdRetention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Request ids a gateway keeps in memory at most (embedded mode); beyond it the oldest finished ones are forgotten first.</summary>
    public int MaxRememberedRequestIds { get; set; } = 1_000_000;

    /// <summary>How long the gateway gathers events of a key from concurrent requests into one batch.</summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// API keys by caller name. Empty: no authentication (every caller may do everything; a warning is logged at
    /// start). Otherwise every call needs one of these keys.
    /// </summary>
    public Dictionary<string, ApiKeySettings> ApiKeys { get; set; } = [];

    /// <summary>Every problem with these settings, one line each.</summary>
    public IEnumerable<string> Validate()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            yield return $"{Section}:Url '{Url}' must be an http:// or https:// URL";
        else if (url.Scheme == "https" && string.IsNullOrWhiteSpace(Certificate?.Path))
            yield return $"{Section}:Url is https but {Section}:Certificate:Path is not set";
        if (Http1Url is not null && (!Uri.TryCreate(Http1Url, UriKind.Absolute, out var http1) || http1.Scheme != "http"))
            yield return $"{Section}:Http1Url '{Http1Url}' must be an http:// URL";
        if (MaxEventsPerRequest < 1) yield return $"{Section}:MaxEventsPerRequest must be at least 1";
        if (MaxRequestBytes < 1024) yield return $"{Section}:MaxRequestBytes must be at least 1024";
        if (EventsPerSecondPerCaller < 1) yield return $"{Section}:EventsPerSecondPerCaller must be at least 1";
        if (BurstPerCaller < MaxEventsPerRequest) yield return $"{Section}:BurstPerCaller must be at least MaxEventsPerRequest";
        if (ReadsPerSecondPerCaller < 1) yield return $"{Section}:ReadsPerSecondPerCaller must be at least 1";
        if (MaxSubscriptionsPerCaller < 1) yield return $"{Section}:MaxSubscriptionsPerCaller must be at least 1";
        if (MaxInFlightEvents < MaxEventsPerRequest) yield return $"{Section}:MaxInFlightEvents must be at least MaxEventsPerRequest";
        if (RequestIdRetention < TimeSpan.FromMinutes(1)) yield return $"{Section}:RequestIdRetention must be at least 1 minute";
        if (MaxRememberedRequestIds < 1_000) yield return $"{Section}:MaxRememberedRequestIds must be at least 1000";
        if (PublishTimeout <= TimeSpan.Zero) yield return $"{Section}:PublishTimeout must be positive";
        if (Linger < TimeSpan.Zero || Linger > TimeSpan.FromSeconds(1)) yield return $"{Section}:Linger must be in [0, 1 s]";
        foreach (var (name, key) in ApiKeys)
        {
            if (!ApiKeyHash.IsValid(key.Hash))
                yield return $"{Section}:ApiKeys:{name}:Hash must be 'sha256:' followed by 64 hex digits (see 'orleans-pipeline-silo hash-key')";
        }
    }
}

/// <summary>TLS certificate of the gateway.</summary>
public sealed class CertificateSettings
{
    /// <summary>A PFX (PKCS#12) file.</summary>
    public string? Path { get; set; }

    /// <summary>Its password, if any.</summary>
    public string? Password { get; set; }
}

/// <summary>One caller's key, stored hashed, and what it may do.</summary>
public sealed class ApiKeySettings
{
    /// <summary><c>sha256:</c> and the hex SHA-256 of the key; the key itself is never stored.</summary>
    public string Hash { get; set; } = "";

    /// <summary>Pipelines the key may publish to; <c>*</c> for all.</summary>
    public List<string> Publish { get; set; } = [];

    /// <summary>Pipelines the key may query and subscribe to; <c>*</c> for all.</summary>
    public List<string> Read { get; set; } = [];
}
