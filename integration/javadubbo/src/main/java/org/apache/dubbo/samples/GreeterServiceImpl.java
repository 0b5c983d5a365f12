package org.apache.dubbo.samples;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Deterministic answers that name the instance, like the dubbo-go provider's. */
public class GreeterServiceImpl implements GreeterService {
    private final String instance;

    public GreeterServiceImpl(String instance) {
        this.instance = instance;
    }

    @Override
    public String sayHello(String name) {
        return "Hello " + name + " from " + instance;
    }

    @Override
    public int add(int a, int b) {
        return a + b;
    }

    @Override
    public User getUser(long id) {
        return new User(id, "user-" + id, 20 + (int) (id % 50));
    }

    @Override
    public List<User> findUsers(String prefix, Map<String, String> filters) {
        int n = 2;
        if (filters != null && filters.containsKey("limit")) {
            n = Integer.parseInt(filters.get("limit"));
        }
        List<User> out = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
            out.add(new User(i, prefix + i, 30 + i));
        }
        return out;
    }

    @Override
    public User updateUser(User user) {
        return new User(user.getId(), user.getName(), user.getAge() + 1);
    }

    @Override
    public void ping() {}

    @Override
    public String greet(String name) {
        return "Hi " + name;
    }

    @Override
    public String greet(String name, int times) {
        return ("Hi " + name + " ").repeat(Math.max(times, 0)).trim();
    }
}
