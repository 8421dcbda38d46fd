/** A small box-drawing tree printer (for `vmm validate`). */
export interface TreeNode {
  label: string;
  children?: TreeNode[];
}

export function renderTree(root: TreeNode): string {
  const lines = [root.label];
  const walk = (nodes: TreeNode[], indent: string) => {
    nodes.forEach((n, i) => {
      const last = i === nodes.length - 1;
      lines.push(`${indent}${last ? '└─ ' : '├─ '}${n.label}`);
      if (n.children?.length) walk(n.children, indent + (last ? '   ' : '│  '));
    });
  };
  walk(root.children ?? [], '');
  return lines.join('\n');
}
