use leak_check::leak_check;

#[leak_check]
mod tests {
    // An attribute cannot see into a module kept in another file (here tests/ui/tests/).
    mod elsewhere;

    #[tokio::test]
    async fn checked() {}
}

fn main() {}
