namespace Orleans.Pipeline.Windowing;

/// <summary>Which clock assigns events to windows.</summary>
public enum TimeMode
{
    /// <summary>The event's own timestamp. Results are reproducible whatever the arrival order and speed.</summary>
    EventTime = 0,

    /// <summary>The arrival (processing) time passed with the event. Cheap and never late, but not reproducible.</summary>
    ProcessingTime = 1,
}
