package org.apache.dubbo.samples;

import java.util.List;
import java.util.Map;

/**
 * The service meshgate's tests call. Its methods cover the signatures a
 * gateway has to map JSON onto: strings, primitives, a POJO, generic
 * collections, void, and one overloaded name (greet).
 */
public interface GreeterService {
    String sayHello(String name);

    int add(int a, int b);

    User getUser(long id);

    List<User> findUsers(String prefix, Map<String, String> filters);

    User updateUser(User user);

    void ping();

    String greet(String name);

    String greet(String name, int times);
}
