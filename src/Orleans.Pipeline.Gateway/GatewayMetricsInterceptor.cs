using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Orleans.Pipeline.Gateway;

/// <summary>Counts every gateway call by method and final status (<c>pipeline.gateway.requests</c>), and open subscriptions.</summary>
internal sealed class GatewayMetricsInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var status = StatusCode.OK;
        try
        {
            return await continuation(request, context);
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (Exception)
        {
            status = StatusCode.Unknown;
            throw;
        }
        finally
        {
            Count(context, status);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var status = StatusCode.OK;
        try
        {
            return await continuation(requestStream, context);
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (Exception)
        {
            status = StatusCode.Unknown;
            throw;
        }
        finally
        {
            Count(context, status);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var status = StatusCode.OK;
        PipelineMeter.GatewaySubscribers.Add(1);
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (Exception)
        {
            status = context.CancellationToken.IsCancellationRequested ? StatusCode.Cancelled : StatusCode.Unknown;
            throw;
        }
        finally
        {
            PipelineMeter.GatewaySubscribers.Add(-1);
            Count(context, status);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var status = StatusCode.OK;
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (Exception)
        {
            status = StatusCode.Unknown;
            throw;
        }
        finally
        {
            Count(context, status);
        }
    }

    private static void Count(ServerCallContext context, StatusCode status)
    {
        // The method's last segment ("Publish"): a bounded set, never anything the caller chose.
        var method = context.Method;
        var name = method[(method.LastIndexOf('/') + 1)..];
        PipelineMeter.GatewayRequests.Add(1, new KeyValuePair<string, object?>("method", name), new KeyValuePair<string, object?>("status", status.ToString()));
    }
}
