// Main class for the DynamoDBLocal.jar that LocalStack runs: starts the real DynamoDB Local (on the Class-Path)
// bound to 127.0.0.1 instead of all interfaces (DynamoDB Local has no -host option), with telemetry off.
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String[] all = java.util.Arrays.copyOf(args, args.length + 1);
        all[args.length] = "-disableTelemetry";
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(all);
        java.lang.reflect.Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server server = (Server) f.get(proxy);
        String host = System.getProperty("ddblocal.host", "127.0.0.1");
        for (Connector c : server.getConnectors()) {
            if (c instanceof ServerConnector sc) sc.setHost(host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host + " " + String.join(" ", args));
    }
}
