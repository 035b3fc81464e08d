namespace Orleans.Pipeline.Windowing;

/// <summary>What a <see cref="WindowResult"/> says about its window.</summary>
public enum ResultKind
{
    /// <summary>An early, partial result of a window that is still open (early firing).</summary>
    Partial = 0,

    /// <summary>The first complete result, emitted when the watermark passes the window's end.</summary>
    Final = 1,

    /// <summary>A corrected complete result: an event arrived after <see cref="Final"/> but within the allowed lateness.</summary>
    Update = 2,

    /// <summary>
    /// The window no longer exists: a session that was emitted has merged with another or grown, and its merged
    /// successor is emitted under its own bounds. Consumers delete the row they hold for these bounds.
    /// </summary>
    Retraction = 3,
}

/// <summary>What happened to one event given to the engine.</summary>
public enum EventOutcome
{
    /// <summary>The event was applied to at least one window.</summary>
    Applied = 0,

    /// <summary>Every window of the event was already past its end plus the allowed lateness; nothing was applied.</summary>
    Late = 1,
}
