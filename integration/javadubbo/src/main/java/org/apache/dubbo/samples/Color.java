package org.apache.dubbo.samples;

/** An enum, as generic calls pass them: by constant name. */
public enum Color {
    RED,
    GREEN,
    BLUE
}
